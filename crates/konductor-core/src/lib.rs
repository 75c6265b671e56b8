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
//! - [`ci`]: CI tag filters ([`ci::filter`]), and the check of a CI configuration against
//!   the graph ([`ci::doctor`]).
//! - [`ops`]: the operations (`start`, `tick`, `set-step-state`, …) built from the above.
#![warn(missing_docs)]

pub mod board;
pub mod changes;
pub mod ci;
pub mod discover;
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

// The CI layer's modules, at the paths they had before `ci/` existed.
pub use ci::doctor;
pub use ci::filter as cifilter;
