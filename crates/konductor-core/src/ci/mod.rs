//! CI wiring: how the CI systems Konductor drives (CircleCI, GitHub Actions, Argo Events)
//! select the tags that start their jobs, and the check of a CI configuration against the
//! step graph.
//!
//! - [`filter`]: the tag filter of a step's job (what `konductor ci-filter` prints) and
//!   evaluators of each system's filter semantics.
//! - [`doctor`]: `konductor doctor`, one file per CI system for reading its configuration.
//!
//! This layer reads CI configuration files and uses the model: the tag grammar
//! ([`crate::tag`]) and the step graph ([`crate::sdd`]). It never touches git and uses
//! nothing from the git layer or the operations; nothing in the model uses it.

pub mod doctor;
pub mod filter;
