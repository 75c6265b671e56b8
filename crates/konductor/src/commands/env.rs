//! `freeze`, `unfreeze`, `rollback`, `unpin` and `env`: environments (see
//! `docs/operations.md`, "Freezes and rollbacks").

use std::path::PathBuf;

use clap::Args;
use konductor_core::error::Error;
use konductor_core::ops::env_control::EnvView;
use konductor_core::ops::{env_view, freeze, rollback, unfreeze, unpin};
use konductor_core::store::Identity;

use crate::out;

fn identity(by: Option<&str>) -> Identity {
    by.map_or_else(|| Identity::from_env("konductor"), Identity::parse)
}

/// Freeze an environment: no deploy to it is triggered until `unfreeze` (or `--until`)
///
/// Checked when a deploy would be triggered: deploys already in flight finish. Recorded
/// as a tag `env=<E>=<k>` with who, when and why (signed when signing is on).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  konductor freeze --env production --reason \"release review\" --until 2026-12-28T08:00:00Z\n  konductor freeze --env staging --reason \"load test\" --until 2h"
)]
pub struct FreezeArgs {
    /// The environment
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Why (recorded)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// When the freeze ends by itself: an RFC 3339 time or a duration from now (`2h`)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Who: `Name <email>` or an email (defaults to $KONDUCTOR_IDENTITY, then git's user)
    #[arg(long, value_name = "IDENTITY")]
    pub by: Option<String>,
    /// Read the environments from this graph instead of the trains' graphs
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

pub fn cmd_freeze(args: FreezeArgs) -> anyhow::Result<i32> {
    let now = konductor_core::time::now();
    let until = args
        .until
        .as_deref()
        .map(|u| konductor_core::freeze::parse_until(u, now).map_err(Error::Input))
        .transpose()?;
    if let Some(u) = until.filter(|u| *u <= now) {
        return Err(Error::input(format!(
            "`--until` {} is not in the future (now is {}); nothing was frozen",
            konductor_core::time::rfc3339(u),
            konductor_core::time::rfc3339(now)
        ))
        .into());
    }
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let by = identity(args.by.as_deref());
    let rec = freeze(
        &store,
        &args.env,
        &args.reason,
        until,
        &by,
        sdd.as_ref(),
        now,
    )?;
    let end = until
        .map(|u| format!(" until {}", konductor_core::time::rfc3339(u)))
        .unwrap_or_default();
    out!("{}: frozen{end} by {by} ({rec})", args.env);
    Ok(0)
}

/// Lift a freeze made with `freeze` (scheduled windows stay the graph's)
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  konductor unfreeze --env production")]
pub struct UnfreezeArgs {
    #[command(flatten)]
    pub lift: LiftArgs,
}

pub fn cmd_unfreeze(args: UnfreezeArgs) -> anyhow::Result<i32> {
    lift(args.lift, unfreeze, "unfrozen", "not frozen")
}

/// What `unfreeze` and `unpin` take: the environment, why, who.
#[derive(Debug, Args)]
pub struct LiftArgs {
    /// The environment
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Why (recorded)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who: `Name <email>` or an email (defaults to $KONDUCTOR_IDENTITY, then git's user)
    #[arg(long, value_name = "IDENTITY")]
    pub by: Option<String>,
    /// Read the environments from this graph instead of the trains' graphs
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

/// The signature of `unfreeze` and `unpin`.
type LiftFn = fn(
    &konductor_core::store::Store,
    &str,
    Option<&str>,
    &Identity,
    Option<&konductor_core::sdd::Sdd>,
    i64,
) -> konductor_core::error::Result<Option<String>>;

/// Lift a freeze or a pin: write the record, or say there was none.
fn lift(args: LiftArgs, op: LiftFn, done: &str, none: &str) -> anyhow::Result<i32> {
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let by = identity(args.by.as_deref());
    let now = konductor_core::time::now();
    match op(
        &store,
        &args.env,
        args.reason.as_deref(),
        &by,
        sdd.as_ref(),
        now,
    )? {
        Some(rec) => out!("{}: {done} by {by} ({rec})", args.env),
        None => out!("{}: {none}", args.env),
    }
    Ok(0)
}

/// Roll an environment back to what an earlier train deployed, and pin it there
///
/// Publishes a new deploy commit under the environment's deploy tag whose tree is what
/// the train deployed, with the current head as parent (history is never rewritten), and
/// pins the environment: no deploy goes there until `konductor unpin`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  konductor rollback --env production --to 41.0 --reason \"42.0 leaks memory\"\n  konductor unpin --env production"
)]
pub struct RollbackArgs {
    /// The environment
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The train whose deploy to bring back (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub to: String,
    /// Why (recorded)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who: `Name <email>` or an email (defaults to $KONDUCTOR_IDENTITY, then git's user)
    #[arg(long, value_name = "IDENTITY")]
    pub by: Option<String>,
    /// Read the environments from this graph instead of the trains' graphs
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_rollback(args: RollbackArgs) -> anyhow::Result<i32> {
    let to = args
        .to
        .parse::<konductor_core::tag::TrainId>()
        .map_err(|e| {
            Error::input(format!(
                "invalid train `{}` in `--to`: {}",
                args.to, e.reason
            ))
        })?;
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let by = identity(args.by.as_deref());
    let now = konductor_core::time::now();
    let r = rollback(&store, &args.env, to, &args.reason, &by, sdd.as_ref(), now)?;
    if args.output.json {
        out!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        out!(
            "{}: rolled back to {} ({} → {}), pinned ({}); `konductor unpin --env {}` lets deploys go",
            r.environment,
            r.train,
            r.deploy_tag,
            konductor_core::train::short(&r.commit),
            r.record,
            r.environment
        );
    }
    Ok(0)
}

/// Let deploys go to an environment again after a rollback
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  konductor unpin --env production")]
pub struct UnpinArgs {
    #[command(flatten)]
    pub lift: LiftArgs,
}

pub fn cmd_unpin(args: UnpinArgs) -> anyhow::Result<i32> {
    lift(args.lift, unpin, "unpinned", "not pinned")
}

/// Show environments: the train there, the one deploying, those waiting, freezes,
/// pins and the last deploys
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  konductor env\n  konductor env --env production --json")]
pub struct EnvArgs {
    /// Only this environment
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Read the environments from this graph instead of the trains' graphs
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_env(args: EnvArgs) -> anyhow::Result<i32> {
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let now = konductor_core::time::now();
    let views = env_view(&store, args.env.as_deref(), sdd.as_ref(), now)?;
    let ahead = ahead_of_production(&store, &views);
    if args.output.json {
        out!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "environments": views, "ahead": ahead })
            )?
        );
    } else {
        out!("{}", render(&views, &ahead));
    }
    Ok(0)
}

/// How many pull requests `env` lists per environment ahead of production.
const AHEAD_LIMIT: usize = 10;

/// What an environment has that production has not yet (`konductor diff production E`).
#[derive(Debug, serde::Serialize)]
struct Ahead {
    environment: String,
    of: String,
    relation: konductor_core::model::diff::Relation,
    commits_total: usize,
    pull_requests_total: usize,
    pull_requests: Vec<konductor_core::model::diff::PullRequest>,
}

/// For each environment shown with a train there, what it has over `production` (the
/// environment named so; none without one). A diff that cannot be read is a warning.
fn ahead_of_production(store: &konductor_core::store::Store, views: &[EnvView]) -> Vec<Ahead> {
    let prod = konductor_core::model::metrics::DEFAULT_ENV;
    let has = |e: &str| {
        views
            .iter()
            .any(|v| v.environment == e && v.current.is_some())
    };
    if !has(prod) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for v in views
        .iter()
        .filter(|v| v.environment != prod && v.current.is_some())
    {
        match konductor_core::ops::diff::diff(store, prod, &v.environment, AHEAD_LIMIT) {
            Ok(d) => out.push(Ahead {
                environment: v.environment.clone(),
                of: prod.to_string(),
                relation: d.relation,
                commits_total: d.commits_total,
                pull_requests_total: d.pull_requests_total,
                pull_requests: d.pull_requests,
            }),
            Err(e) => eprintln!(
                "konductor: warning: cannot tell how far `{}` is ahead of `{prod}`: {e}",
                v.environment
            ),
        }
    }
    out
}

fn render(views: &[EnvView], ahead: &[Ahead]) -> String {
    if views.is_empty() {
        return "no environments: no graph has a deploy step with `environment: NAME`".into();
    }
    let mut s = String::new();
    for v in views {
        let tag = v
            .deploy_tag
            .as_deref()
            .map(|t| format!(" (deploy tag `{t}`)"))
            .unwrap_or_default();
        s.push_str(&format!("{}{tag}\n", v.environment));
        match &v.current {
            Some(c) => s.push_str(&format!(
                "  now:       {}{}{}{}{}\n",
                c.train,
                if c.rollback { " (rollback)" } else { "" },
                c.since
                    .as_deref()
                    .map(|x| format!(" since {x}"))
                    .unwrap_or_default(),
                c.by.as_deref()
                    .map(|x| format!(" by {x}"))
                    .unwrap_or_default(),
                c.commit
                    .as_deref()
                    .map(|x| format!(", commit {}", konductor_core::train::short(x)))
                    .unwrap_or_default(),
            )),
            None => s.push_str("  now:       nothing deployed\n"),
        }
        if let Some(d) = &v.deploying {
            s.push_str(&format!("  deploying: {d}\n"));
        }
        if !v.waiting.is_empty() {
            s.push_str(&format!("  waiting:   {}\n", v.waiting.join(", ")));
        }
        if let Some(p) = &v.pinned {
            let note = if p.published == Some(false) {
                " (rollback not published: run it again)"
            } else {
                ""
            };
            s.push_str(&format!("  PINNED:    {}{note}\n", p.reason));
        }
        if let Some(f) = &v.frozen {
            s.push_str(&format!("  FROZEN:    {}\n", f.reason));
        }
        if let Some(a) = ahead.iter().find(|a| a.environment == v.environment) {
            let prs: Vec<String> = a
                .pull_requests
                .iter()
                .map(|p| format!("#{}", p.number))
                .collect();
            s.push_str(&format!(
                "  ahead of {}: {} commit{}, {} pull request{}{}{}\n",
                a.of,
                a.commits_total,
                if a.commits_total == 1 { "" } else { "s" },
                a.pull_requests_total,
                if a.pull_requests_total == 1 { "" } else { "s" },
                if prs.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", prs.join(", "))
                },
                if a.pull_requests_total > prs.len() {
                    " …"
                } else {
                    ""
                },
            ));
        }
        for w in &v.freeze_windows {
            s.push_str(&format!("  window:    {w}\n"));
        }
        for d in &v.deploys {
            s.push_str(&format!(
                "  deploy     {}  {}  {}{}\n",
                konductor_core::train::short(&d.commit),
                d.at,
                d.train.as_deref().unwrap_or("?"),
                if d.rollback {
                    format!(
                        "  rollback: {}",
                        d.reason.as_deref().unwrap_or("(no reason)")
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    s.trim_end().to_string()
}
