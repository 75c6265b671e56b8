use clap::Args;

/// Print the CI tag filter that runs a step's job on its trigger tags only
#[derive(Debug, Args)]
pub struct CiFilterArgs {
    /// The step
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// The CI system
    #[arg(long = "for", value_name = "CI")]
    pub ci: String,
}

pub fn cmd_ci_filter(_args: CiFilterArgs) -> anyhow::Result<i32> {
    anyhow::bail!("ci-filter: work in progress")
}
