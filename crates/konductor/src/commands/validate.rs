use std::path::PathBuf;

use clap::Args;

use crate::out;

/// Check `sdd.yaml`: structure, names, dependencies, cycles
///
/// Exits 0 with a one-line summary, or 2 with every problem, each with its file and line.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # check ./sdd.yaml\n  konductor validate\n  # check another file\n  konductor validate --sdd ci/sdd.yaml"
)]
pub struct ValidateArgs {
    /// The step graph
    #[arg(long, default_value = "sdd.yaml", value_name = "FILE")]
    pub sdd: PathBuf,
}

pub fn cmd_validate(args: ValidateArgs) -> anyhow::Result<i32> {
    let sdd = super::load_sdd(&args.sdd)?;
    let targets = sdd.targets();
    let deepest = targets.iter().map(|t| sdd.depth(t)).max().unwrap_or(0);
    out!(
        "{}: ok: {} steps, {} leaves, {} targets ({}), depth {}",
        args.sdd.display(),
        sdd.steps().len(),
        sdd.leaves().len(),
        targets.len(),
        targets.join(", "),
        deepest
    );
    Ok(0)
}
