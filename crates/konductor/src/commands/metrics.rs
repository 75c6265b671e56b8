use clap::Args;
use konductor_core::error::Error;
use konductor_core::metrics::{parse_window, Metrics, Summary, DEFAULT_ENV};
use konductor_core::ops::metrics::{metrics, MetricsRequest, DEFAULT_METRICS_HORIZON};
use konductor_core::time::age;

use crate::out;

/// Print the DORA figures of an environment, computed from the tags
///
/// Deployment frequency, lead time for changes (train commit → successful deploy),
/// change failure rate (deploys followed by a failure of a later step, or a rollback of
/// the deploy tag) and time to restore, over a window. `--json` adds trains by state,
/// step durations and waits at gates and environments. Definitions: docs/operations.md
/// ("Metrics"); the JSON: docs/status-json.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # production over the last 30 days\n  konductor metrics\n  # staging over the last week, as JSON\n  konductor metrics --env staging --since 7d --json"
)]
pub struct MetricsArgs {
    /// The environment whose deploys count
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ENV)]
    pub env: String,
    /// The window, back from now (`30d`, `12h`, `1d12h`; at most a year)
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub since: String,
    /// How many of the newest train numbers to read
    #[arg(long, value_name = "N", default_value_t = DEFAULT_METRICS_HORIZON)]
    pub horizon: u32,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_metrics(args: MetricsArgs) -> anyhow::Result<i32> {
    // Check every argument before reading the remote.
    let window_secs =
        parse_window(&args.since).map_err(|e| Error::input(format!("in `--since`: {e}")))?;
    if let Some(why) = konductor_core::model::env::env_name_problem(&args.env) {
        return Err(Error::input(format!(
            "in `--env`: `{}` cannot be an environment name: {why}",
            args.env
        ))
        .into());
    }
    let store = args.remote.open()?;
    let m = metrics(
        &store,
        &MetricsRequest {
            horizon: args.horizon,
            env: args.env.clone(),
            window_secs,
            now: konductor_core::time::now(),
        },
    )?;
    if args.output.json {
        out!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        out!("{}", summary(&m, &args.since));
    }
    Ok(0)
}

fn summary(m: &Metrics, since: &str) -> String {
    let d = &m.dora;
    let s = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let durations = |x: &Summary, what: &str| match (x.median_secs, x.mean_secs) {
        (Some(med), Some(mean)) => format!(
            "median {}, mean {} ({})",
            age(med as i64),
            age(mean as i64),
            s(x.count, what, &format!("{what}s"))
        ),
        _ => "none".to_string(),
    };
    let rate = match d.change_failure_rate {
        Some(r) => format!(
            "{:.0}% ({} of {} followed by a failure or a rollback; {})",
            r * 100.0,
            d.failed_deploys,
            s(d.deploys, "deploy", "deploys"),
            s(d.rollbacks, "rollback", "rollbacks")
        ),
        None => "none (no deploys)".to_string(),
    };
    let open = d.incidents.iter().find(|i| i.restored_at.is_none());
    let mut restore = durations(&d.time_to_restore, "incident");
    if let Some(i) = open {
        restore.push_str(&format!(
            "; open since {} (train {}, `{}` failed)",
            i.failed_at, i.train, i.step
        ));
    }
    let trains = m
        .trains
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{env}, last {since} ({from} → {to}), {read} read\n\
         deployment frequency   {deploys} ({per_day:.2}/day, {per_week:.2}/week)\n\
         lead time for changes  {lead}\n\
         change failure rate    {rate}\n\
         time to restore        {restore}\n\
         trains now             {trains}",
        env = m.env,
        from = m.since,
        to = m.now,
        read = s(m.trains_read, "train", "trains"),
        deploys = s(d.deploys, "deploy", "deploys"),
        per_day = d.deploys_per_day,
        per_week = d.deploys_per_week,
        lead = durations(&d.lead_time, "deploy"),
        trains = if trains.is_empty() {
            "none".into()
        } else {
            trains
        },
    )
}
