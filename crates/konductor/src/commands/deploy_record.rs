use clap::Args;
use konductor_core::ops::deploy_record::{deploy_record, RecordOf};

use crate::out;

/// Print the deploy commit a train published to an environment
///
/// Reads the history of the environment's deploy tag (`deploy_tag` of its deploy step in
/// the train's `sdd.yaml`) and prints the newest deploy commit whose `train:` is the
/// train, rollback commits left out. A verification job checks that commit, not whatever
/// the moving tag points to when it runs. Exit 2 when the train never deployed there.
/// See docs/integrations.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # the commit train 42.0 deployed to staging\n  konductor deploy-record --env staging --train 42.0\n  # with the train's commit, trigger and who published it\n  konductor deploy-record --tag staging-k8s --train 42.0 --json"
)]
pub struct DeployRecordArgs {
    /// The environment (its deploy tag comes from the train's `sdd.yaml`)
    #[arg(
        long,
        value_name = "ENV",
        required_unless_present = "tag",
        conflicts_with = "tag"
    )]
    pub env: Option<String>,
    /// The deploy tag to read instead of an environment's
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// The train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: String,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_deploy_record(args: DeployRecordArgs) -> anyhow::Result<i32> {
    let train = super::parse_train(&args.train)?;
    let what = match (args.env, args.tag) {
        (Some(e), _) => RecordOf::Env(e),
        (None, Some(t)) => RecordOf::Tag(t),
        (None, None) => unreachable!("clap requires --env or --tag"),
    };
    let store = args.remote.open()?;
    let r = deploy_record(&store, &what, train)?;
    if args.output.json {
        out!("{}", serde_json::to_string(&r)?);
    } else {
        out!("{}", r.commit);
    }
    Ok(0)
}
