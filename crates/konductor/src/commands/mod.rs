//! One module per subcommand: an `XxxArgs` struct and a `cmd_xxx` function.

pub mod board;
pub mod ci_filter;
pub mod control;
pub mod deploy_record;
pub mod diff;
pub mod doctor;
pub mod env;
pub mod gc;
pub mod graph;
pub mod log;
pub mod metrics;
pub mod serve;
pub mod simulate;
pub mod start;
pub mod status;
pub mod tick;
pub mod validate;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use konductor_core::sdd::Sdd;

/// Read and validate an SDD file.
pub fn load_sdd(path: &Path) -> anyhow::Result<Sdd> {
    let text = konductor_core::sdd::read_file(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            // The usual first stumble: running outside the repository's root.
            let hint = if path == Path::new(DEFAULT_SDD) {
                "; run it where `sdd.yaml` is, or pass the graph with `--sdd FILE`"
            } else {
                ""
            };
            konductor_core::error::Error::input(format!(
                "cannot read `{}`: no such file{hint}",
                path.display()
            ))
        } else {
            konductor_core::error::Error::Io {
                what: format!("cannot read `{}`", path.display()),
                source: e,
            }
        }
    })?;
    Ok(Sdd::parse(&path.display().to_string(), &text)?)
}

/// `s` after a count other than one: `1 train`, `2 trains`.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The graph's file when `--sdd` is not given.
pub const DEFAULT_SDD: &str = "sdd.yaml";

/// Read an SDD only if a path was given.
pub fn load_sdd_opt(path: Option<&PathBuf>) -> anyhow::Result<Option<Sdd>> {
    path.map(|p| load_sdd(p)).transpose()
}

/// Parse `N.P`.
pub fn parse_train(s: &str) -> anyhow::Result<konductor_core::tag::TrainId> {
    s.parse::<konductor_core::tag::TrainId>()
        .map_err(|e| {
            konductor_core::error::Error::input(format!("invalid train `{s}`: {}", e.reason))
        })
        .context("in `--train`")
}

/// Print a line to stdout; a closed pipe ends the program quietly.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// Print discovery's warnings about train tags that are not trains.
pub fn warn_ignored(found: &konductor_core::ops::Discovery) {
    for w in found.warnings() {
        eprintln!("konductor: warning: {w}");
    }
}
