//! The model: pure functions and types, no git, no I/O, no clock of its own.
//!
//! - [`tag`][]: the tag grammar: parse and format every tag name;
//! - [`sdd`][]: `sdd.yaml`: parse, validate, targets, order;
//! - [`env`][]: environments: names, deploy tags, claim tags, the facts about other trains;
//! - [`metrics`][]: figures from the tags (states, durations, waits, DORA);
//! - [`freeze`][]: freeze windows and the control records (freeze, pin) of environments;
//! - [`changes`][]: `if_changed` globs;
//! - [`notify`][]: notification events, payloads, target specs and delivery markers;
//! - [`diff`][]: what is in a train: commits, pull requests, changed files (pure);
//! - [`train`][]: one train's tag records turned into observed facts (the trust rules);
//! - [`plan`][]: the planner, a pure function from graph, facts and clock to actions;
//! - [`simulate`][]: the planner against instant in-memory jobs;
//! - [`time`][]: the clock value (`KONDUCTOR_NOW`), clamping and RFC 3339.
//!
//! It may use only itself and the crate's error vocabulary ([`crate::error`]). A fact
//! the planner needs from git is asked for with an action (`Evaluate`), never fetched.

pub mod changes;
pub mod diff;
pub mod env;
pub mod freeze;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod sdd;
pub mod simulate;
pub mod tag;
pub mod time;
pub mod train;
