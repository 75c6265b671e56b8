use std::path::PathBuf;

use clap::Args;

/// Cross-check the step graph against the repository's CI configuration
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The step graph
    #[arg(long, default_value = "sdd.yaml", value_name = "FILE")]
    pub sdd: PathBuf,
}

pub fn cmd_doctor(_args: DoctorArgs) -> anyhow::Result<i32> {
    anyhow::bail!("doctor: work in progress")
}
