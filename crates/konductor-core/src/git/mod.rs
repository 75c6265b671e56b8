//! The git layer: the only code that runs libgit2 (`git2`), the git CLI or `ssh-keygen`.
//!
//! - [`store`][]: the cache (a partial bare clone), fetches, tag objects, pushes,
//!   credentials;
//! - [`github_app`][]: GitHub App installation tokens, minted from the App's key (one
//!   HTTPS request to the GitHub API; the only HTTP client in the core);
//! - [`history`][]: the commits and trees between two commits, in a scratch repository;
//! - [`wire`][]: a small `git-receive-pack` client for gc's mass deletes;
//! - [`sign`][]: SSH signatures in git's format;
//! - [`tls`][]: initialising libgit2 without the CA bundle when no TLS will be spoken;
//! - [`manifests`][]: what a folder of manifests becomes as a git tree.
//!
//! It may use the model ([`crate::model`]: tag records) and the error vocabulary, never
//! [`crate::ops`].

pub mod github_app;
pub mod history;
pub mod manifests;
pub mod sign;
pub mod store;
pub mod tls;
pub mod wire;
