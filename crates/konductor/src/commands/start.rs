use clap::Args;
use konductor_core::ops::{start, StartOptions};
use konductor_core::store::Identity;

use crate::out;

/// Open a train on a commit and print its id
///
/// Creates the train tag `release=N.0`, N one more than the highest train on the remote
/// (create-only: a racing start takes the next number). `--hotfix N` opens `N.1`, `N.2`, ….
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # open the next train; prints e.g. 1.0\n  konductor start --sha \"$(git rev-parse HEAD)\"\n  # open hotfix train 1.1\n  konductor start --sha \"$(git rev-parse HEAD)\" --hotfix 1"
)]
pub struct StartArgs {
    /// The commit to release
    #[arg(long, value_name = "SHA")]
    pub sha: String,
    /// Open a hotfix of train N instead of a new train
    #[arg(long, value_name = "N")]
    pub hotfix: Option<u32>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_start(args: StartArgs) -> anyhow::Result<i32> {
    let store = args.remote.open()?;
    let who = Identity::from_env("konductor");
    let id = start(
        &store,
        &StartOptions {
            sha: args.sha,
            hotfix: args.hotfix,
        },
        &who,
        konductor_core::time::now(),
    )?;
    if args.output.json {
        out!("{}", serde_json::json!({ "train": id.to_string() }));
    } else {
        out!("{id}");
    }
    Ok(0)
}
