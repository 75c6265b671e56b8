//! Konductor's core, in layers (arrows point down only):
//!
//! ```text
//! ops/     what each command does: read, discover, start, advance, report, control,
//!          deploy, archive, retain (gc), status          uses git/ and model/
//! ci/      CI tag filters and the doctor, per CI system   uses model/
//! git/     store, wire, sign, manifests: the only code that runs git2, the git CLI or
//!          ssh-keygen                                     uses model/
//! model/   tag grammar, SDD, observed train, planner, simulation, changes, time: pure
//! error, exit_codes: the error vocabulary every layer shares
//! ```
//!
//! Everything here is free of command-line concerns and of rendering: the `konductor`
//! and `locomotive` binaries turn arguments into calls of this crate, and
//! `konductor-web` draws the board. Each folder's `mod.rs` says what lives there and what
//! it may use. The old flat paths (`konductor_core::tag`, `::store`, …) are re-exported
//! below for the binaries and tests.
#![warn(missing_docs)]

pub mod ci;
pub mod error;
pub mod exit_codes;
pub mod git;
pub mod model;
pub mod ops;

pub use ci::{doctor, filter as cifilter};
pub use git::{manifests, sign, store, wire};
pub use model::{changes, freeze, metrics, plan, sdd, simulate, tag, time, train};
pub use ops::{discover, retain as gc, status as report};
