//! Konductor on the web: the board, an HTML page drawn from train reports.
//!
//! This crate turns what the core reports ([`konductor_core::report`]) into markup; it
//! plans nothing and touches no git. Today it has one entry point, [`render_board`], a
//! plain function from reports to a page that `konductor board --out DIR` writes to disk;
//! `konductor serve` serves the same sections live ([`render_live_page`]).
#![warn(missing_docs)]

mod board;

pub use board::live::{render_live_fragment, render_live_page, RepoBoard};
pub use board::{render_board, render_board_with, BoardChanges};
