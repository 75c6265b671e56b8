use std::path::PathBuf;

use clap::Args;
use konductor_core::ops::{cancel, retry, unblock};
use konductor_core::store::Identity;

use crate::out;

/// Unblock a manual gate of a train, recording who and why
///
/// Refuses a step that is not manual, a gate whose dependencies are not done, and an
/// identity not in the gate's `approvers`. Unblocking twice is a no-op.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # prints the command for a waiting gate\n  konductor status --train 1.0\n  # let the train go on\n  konductor unblock --train 1.0 --step require-manual-unblock-before-prod-deploy \\\n      --reason \"flavors reviewed\""
)]
pub struct UnblockArgs {
    /// The train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: String,
    /// The manual gate
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// Why it may go on (recorded in the tag)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who attests: `Name <email>` or an email (defaults to $KONDUCTOR_IDENTITY, then git's user)
    #[arg(long, value_name = "IDENTITY")]
    pub by: Option<String>,
    /// Use this graph instead of the one at the train's commit
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

pub fn cmd_unblock(args: UnblockArgs) -> anyhow::Result<i32> {
    let t = super::parse_train(&args.train)?;
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let by = args
        .by
        .as_deref()
        .map_or_else(|| Identity::from_env("konductor"), Identity::parse);
    let outcome = unblock(
        &store,
        t,
        &args.step,
        args.reason.as_deref(),
        &by,
        sdd.as_ref(),
        konductor_core::time::now(),
    )?;
    out!("train {t}: {} {outcome} by {by}", args.step);
    Ok(0)
}

/// Trigger the next attempt of a failed step
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # trigger unit-tests.2 after unit-tests.1 failed\n  konductor retry --train 1.0 --step unit-tests"
)]
pub struct RetryArgs {
    /// The train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: String,
    /// The failed step
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// Use this graph instead of the one at the train's commit
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

pub fn cmd_retry(args: RetryArgs) -> anyhow::Result<i32> {
    let t = super::parse_train(&args.train)?;
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let by = Identity::from_env("konductor");
    let (tag, outcome) = retry(
        &store,
        t,
        &args.step,
        &by,
        sdd.as_ref(),
        konductor_core::time::now(),
    )?;
    out!("train {t}: trigger {tag}: {outcome}");
    Ok(0)
}

/// Cancel a train: ticks trigger nothing more for it
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # stop ticking train 1.0\n  konductor cancel --train 1.0 --reason \"superseded by 2.0\""
)]
pub struct CancelArgs {
    /// The train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: String,
    /// Why (recorded in the tag)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

pub fn cmd_cancel(args: CancelArgs) -> anyhow::Result<i32> {
    let t = super::parse_train(&args.train)?;
    let store = args.remote.open()?;
    let by = Identity::from_env("konductor");
    let outcome = cancel(
        &store,
        t,
        args.reason.as_deref(),
        &by,
        konductor_core::time::now(),
    )?;
    out!("train {t}: {outcome} by {by}");
    Ok(0)
}
