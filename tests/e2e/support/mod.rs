//! Fixtures shared by the end-to-end tests.

pub mod github_api;
pub mod receiver;
pub mod servers;
