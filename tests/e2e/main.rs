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
mod docs;
mod doctor;
mod environments;
mod faults;
mod free_text;
mod gc;
mod github_app;
mod harness;
mod hostile;
mod isolation;
mod lifecycle;
mod newcomer;
mod race;
mod rerun;
mod signing;
mod soak;
mod support;
mod tls_init;
mod train_loop;
