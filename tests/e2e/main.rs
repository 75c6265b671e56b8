//! End-to-end tests: the `konductor` and `locomotive` binaries against real git servers
//! (a bare repository path, `git daemon`, and `git http-backend` behind lighttpd with basic
//! auth), started on loopback by the tests themselves.

mod bad_input;
mod board;
mod boundaries;
mod browser;
mod cas;
mod checkout;
mod cli;
mod deploy;
mod deploy_forward;
mod diff;
mod docs;
mod doctor;
mod env_control;
mod env_model;
mod env_records;
mod environments;
mod faults;
mod free_text;
mod gc;
mod github_app;
mod harness;
mod hostile;
mod isolation;
mod lifecycle;
mod metrics;
mod newcomer;
mod notify;
mod notify_env;
mod race;
mod rerun;
mod serve;
mod signing;
mod soak;
mod support;
mod tls_init;
mod train_loop;
