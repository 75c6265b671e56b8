//! Operations: what each command does, one file per family. An operation reads the
//! remote through the git layer ([`crate::git`]), asks the pure model ([`crate::model`])
//! what to do, and writes tags back; it never renders anything (the binaries and
//! `konductor-web` do) and never parses command-line arguments (the binaries do).
//!
//! - [`read`][]: one train's tags, graph and plan, `if_changed` conditions evaluated;
//! - [`discover`][]: which trains a reader follows, junk train tags judged and ignored;
//! - [`start`][]: opening trains and hotfixes;
//! - [`advance`][]: `tick`;
//! - [`report`][]: `set-step-state` (CI jobs' reports and re-runs);
//! - [`control`][]: `unblock`, `retry`, `cancel`;
//! - [`deploy`][]: `publish-manifests`;
//! - [`diff`][]: what is in a train (`konductor diff`), what runs in an environment;
//! - [`environments`][]: the facts about other trains a deploy step is decided from;
//! - [`metrics`][]: the figures of `konductor metrics` and `/metrics`;
//! - [`notify`][]: notifications (webhooks, Slack, GitHub), each delivered once;
//!   [`notify_env`][]: their environment events and pull-request comments;
//! - [`env_control`][]: `freeze`, `unfreeze`, `rollback`, `unpin` and the `env` view;
//! - [`archive`] and [`retain`][]: the archive of collected trains and `gc`;
//! - [`status`][]: status and log reports (`status --json`, `log --json`).
//!
//! Arrows point down only: `retain` uses `read` and `archive`; `control` uses `read` and
//! `archive`; nothing here is used by `model` or `git`.

pub mod advance;
pub mod archive;
pub mod control;
pub mod deploy;
pub mod deploy_record;
pub mod diff;
pub mod discover;
pub mod env_control;
pub mod environments;
pub mod metrics;
pub mod notify;
pub mod notify_env;
pub mod read;
pub mod report;
pub mod retain;
pub mod start;
pub mod status;
#[cfg(test)]
mod tests;

pub use advance::*;
pub use control::*;
pub use deploy::*;
pub use discover::{cached_trains, discover, Discovery, IgnoredTrain};
pub use env_control::{env_view, freeze, rollback, unfreeze, unpin};
pub use environments::environments;
pub use read::*;
pub use report::*;
pub use start::*;
