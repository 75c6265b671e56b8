use std::path::PathBuf;

use clap::Args;
use konductor_core::ops::{tick, TickOptions, DEFAULT_HORIZON};
use konductor_core::store::Identity;

use crate::out;

/// Advance trains: trigger every step whose dependencies succeeded
///
/// Pushes one trigger tag per push, create-only, so racing ticks never trigger a step
/// twice. Without `--train` it advances every running train among the newest `--horizon`
/// train numbers. The graph is `sdd.yaml` at each train's commit unless `--sdd` is given.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # advance every running train\n  konductor tick\n  # show what one train would trigger\n  konductor tick --train 1.0 --dry-run"
)]
pub struct TickArgs {
    /// Only this train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: Option<String>,
    /// The step to reach (defaults to the graph's final target)
    #[arg(long, value_name = "STEP")]
    pub target: Option<String>,
    /// Use this graph instead of the one at the train's commit
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    /// Print what would be done; push nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How many of the newest train numbers to follow
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HORIZON)]
    pub horizon: u32,
    /// Send notifications: `webhook+https://…`, `slack+https://hooks.slack.com/…` or
    /// `github` (repeatable; in `KONDUCTOR_NOTIFY`, separated by spaces)
    ///
    /// Each event (a step failed or timed out, a gate waits, an environment deployed, a
    /// train ended) is delivered once per target, after the tick's pushes; a target that
    /// is down is retried on later ticks. See docs/notifications.md.
    #[arg(
        long = "notify",
        value_name = "SPEC",
        env = "KONDUCTOR_NOTIFY",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub notify: Vec<String>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_tick(args: TickArgs) -> anyhow::Result<i32> {
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let train = args.train.as_deref().map(super::parse_train).transpose()?;
    let store = args.remote.open()?;
    // Every notification problem is bad input, found before anything is pushed.
    let notifier =
        konductor_core::ops::notify::Notifier::from_specs(&args.notify, &store.remote().url)?;
    let who = Identity::from_env("konductor");
    let opts = TickOptions {
        train,
        target: args.target,
        sdd,
        dry_run: args.dry_run,
        horizon: args.horizon,
    };
    let now = konductor_core::time::now();
    let report = tick(&store, &opts, &who, now)?;
    let ticks = &report.trains;
    // After the tick's pushes, and never when it stopped or only planned.
    let notified = match &notifier {
        Some(n) if report.stopped.is_none() && !opts.dry_run => {
            let trains: Vec<_> = ticks
                .iter()
                .filter(|t| t.error.is_none())
                .filter_map(|t| t.train.parse().ok())
                .collect();
            Some(konductor_core::ops::notify::notify_trains(
                &store,
                n,
                &trains,
                opts.sdd.as_ref(),
                opts.target.as_deref(),
                &who,
                now,
            ))
        }
        _ => None,
    };
    if args.output.json {
        let mut doc = serde_json::json!({ "trains": ticks, "ignored": report.ignored });
        if let Some(e) = &report.stopped {
            doc["stopped"] = serde_json::Value::String(e.to_string());
        }
        match &notified {
            Some(Ok(r)) => doc["notifications"] = serde_json::to_value(r)?,
            Some(Err(e)) => {
                doc["notifications"] =
                    serde_json::json!({ "deliveries": [], "errors": [e.to_string()] })
            }
            None => {}
        }
        out!("{}", serde_json::to_string(&doc)?);
    } else {
        if ticks.is_empty() && report.stopped.is_none() {
            out!("no trains on `{}`", store.remote().url);
        }
        for w in konductor_core::discover::ignored_warnings(&report.ignored) {
            eprintln!("konductor: warning: {w}");
        }
        for t in ticks {
            for w in &t.warnings {
                eprintln!("konductor: warning: train {}: {w}", t.train);
            }
            if let Some(e) = &t.error {
                eprintln!("konductor: error: train {}: {e}", t.train);
                continue;
            }
            if t.actions.is_empty() {
                out!("train {}: {} (nothing to do)", t.train, t.state.as_str());
            }
            for a in &t.actions {
                let verb = match &a.action {
                    konductor_core::plan::Action::Trigger { .. } => "trigger",
                    konductor_core::plan::Action::Timeout { .. } => "timeout",
                    konductor_core::plan::Action::Skip { .. } => "skip",
                    konductor_core::plan::Action::Evaluate { .. } => "evaluate",
                    konductor_core::plan::Action::Claim { .. } => "claim",
                    konductor_core::plan::Action::Supersede { .. } => "supersede",
                };
                let what = match &a.action {
                    konductor_core::plan::Action::Trigger { reason, .. } => reason.describe(),
                    konductor_core::plan::Action::Timeout { reason, .. }
                    | konductor_core::plan::Action::Skip { reason, .. }
                    | konductor_core::plan::Action::Supersede { reason, .. } => reason.clone(),
                    konductor_core::plan::Action::Evaluate { .. } => String::new(),
                    konductor_core::plan::Action::Claim { step, .. } => {
                        format!("deploy step `{step}`")
                    }
                };
                out!(
                    "train {}: {verb} {} ({what}): {}",
                    t.train,
                    a.tag,
                    a.outcome
                );
                if let Some(e) = &a.error {
                    eprintln!("konductor: error: train {}: {e}", t.train);
                }
            }
        }
    }
    if !args.output.json {
        match &notified {
            Some(Ok(r)) => print_notifications(r)?,
            Some(Err(e)) => eprintln!("konductor: warning: notifications: {e}"),
            None => {}
        }
    }
    if let Some(e) = report.stopped {
        // Printed once by the caller, with its own exit code (4 or 2).
        return Err(e.into());
    }
    Ok(report.exit_code())
}

/// Print what a notification run did: one line per delivery (`notify: <id> → <target>:
/// sent`) on stdout; failures, give-ups and unreadable trains as warnings on stderr. For
/// `tick` and `serve`.
pub fn print_notifications(r: &konductor_core::ops::notify::NotifyReport) -> anyhow::Result<()> {
    for d in &r.deliveries {
        match d.outcome.as_str() {
            "failed" => eprintln!(
                "konductor: warning: notify: {} → {}: attempt {} failed, tried again later: {}",
                d.id,
                d.target,
                d.attempt,
                d.error.as_deref().unwrap_or("")
            ),
            "gave-up" => eprintln!(
                "konductor: warning: notify: {} → {}: gave up after attempt {}: {}",
                d.id,
                d.target,
                d.attempt,
                d.error.as_deref().unwrap_or("")
            ),
            other => {
                out!("notify: {} → {}: {other}", d.id, d.target);
                if let Some(e) = &d.error {
                    eprintln!("konductor: warning: notify: {} → {}: {e}", d.id, d.target);
                }
            }
        }
    }
    for e in &r.errors {
        eprintln!("konductor: warning: notify: {e}");
    }
    Ok(())
}
