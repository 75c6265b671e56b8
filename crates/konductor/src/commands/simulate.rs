use std::path::PathBuf;

use clap::Args;
use konductor_core::error::Error;
use konductor_core::simulate::{simulate, SimOptions};

use super::plural;
use crate::out;

/// Dry-run a train locally with instant jobs, tick by tick
///
/// Prints which steps each tick would trigger, then the number of ticks and the critical
/// path. `--fail` makes steps fail and shows what they block. Touches no git.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The step graph
    #[arg(long, default_value = "sdd.yaml", value_name = "FILE")]
    pub sdd: PathBuf,
    /// The step to reach (defaults to the graph's final target)
    #[arg(long, value_name = "STEP")]
    pub target: Option<String>,
    /// Make this step's jobs fail (repeatable)
    #[arg(long, value_name = "STEP")]
    pub fail: Vec<String>,
    /// Unblock this manual gate when reached (repeatable)
    #[arg(long, value_name = "STEP")]
    pub unblock: Vec<String>,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_simulate(args: SimulateArgs) -> anyhow::Result<i32> {
    let sdd = super::load_sdd(&args.sdd)?;
    let target = match args.target {
        Some(t) => t,
        None => sdd.default_target().map_err(Error::Input)?.to_string(),
    };
    let opts = SimOptions {
        target,
        fail: args.fail.into_iter().collect(),
        unblock: args.unblock.into_iter().collect(),
    };
    let sim = simulate(&sdd, &opts).map_err(Error::Input)?;
    if args.output.json {
        out!("{}", serde_json::to_string_pretty(&sim)?);
        return Ok(0);
    }
    out!(
        "simulating `{}` to `{}` with instant jobs",
        args.sdd.display(),
        sim.target
    );
    for t in &sim.ticks {
        let mut parts = Vec::new();
        if !t.triggered.is_empty() {
            parts.push(format!("trigger {}", t.triggered.join(", ")));
        }
        if !t.failed.is_empty() {
            parts.push(format!("failed {}", t.failed.join(", ")));
        }
        if !t.unblocked.is_empty() {
            parts.push(format!("unblock {}", t.unblocked.join(", ")));
        }
        out!("tick {:>2}: {}", t.tick, parts.join("; "));
    }
    let blocked: Vec<String> = sim
        .steps
        .iter()
        .filter(|s| s.state.as_str() == "blocked")
        .map(|s| format!("{} ({})", s.name, s.reason.clone().unwrap_or_default()))
        .collect();
    out!(
        "result: train {} after {} ticks",
        sim.state.as_str(),
        sim.ticks.len()
    );
    if !blocked.is_empty() {
        out!("blocked: {}", blocked.join(", "));
    }
    // The path lists every step on it; only jobs take time (gates and virtual steps don't).
    let n = sim.critical_path.len();
    out!(
        "critical path ({n} step{}, {} of them job{}): {}",
        plural(n),
        sim.depth,
        plural(sim.depth),
        sim.critical_path.join(" → ")
    );
    Ok(0)
}
