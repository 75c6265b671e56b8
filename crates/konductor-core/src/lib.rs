//! Konductor's core: the tag grammar, the step graph (SDD), the planner and the git store.
//!
//! Everything here is free of command-line concerns; the `konductor` and `locomotive`
//! binaries turn arguments into calls of this crate.
//!
//! - [`tag`]: parse and format every tag.
//! - [`sdd`]: parse and validate `sdd.yaml`.
//! - [`train`]: turn one train's tags into observed facts, refusing what can't be trusted.
//! - [`plan`]: the pure planner.
//! - [`store`]: the only code that touches git.
//! - [`cifilter`], [`doctor`]: CI tag filters, and the check of a CI configuration against
//!   the graph.
//! - [`ops`]: the operations (`start`, `tick`, `set-step-state`, …) built from the above.
#![warn(missing_docs)]

pub mod changes;
pub mod cifilter;
pub mod discover;
pub mod doctor;
pub mod error;
pub mod exit_codes;
pub mod gc;
pub mod manifests;
pub mod ops;
pub mod plan;
pub mod report;
pub mod sdd;
pub mod sign;
pub mod simulate;
pub mod store;
pub mod tag;
pub mod time;
pub mod train;
pub mod wire;
