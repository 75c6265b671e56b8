use std::path::PathBuf;

use clap::Args;
use konductor_core::gc::{gc, GcOptions, ARCHIVE_REF};
use konductor_core::store::Identity;

use crate::out;

/// Archive old finished trains and delete their tags, keeping the newest N
///
/// Each collected train's full record (every tag: name, commit, tagger, time, message) is
/// written as one commit on `refs/konductor/archive` before its tags are deleted. Running
/// or blocked trains are never collected. `status` and `log` still read archived trains.
/// An interrupted run loses nothing; run it again to finish.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// How many finished trains to keep as tags (at least 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// Print what would be collected; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Use this graph instead of each train's own `sdd.yaml`
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_gc(args: GcArgs) -> anyhow::Result<i32> {
    let sdd = super::load_sdd_opt(args.sdd.as_ref())?;
    let store = args.remote.open()?;
    let who = Identity::from_env("konductor");
    let opts = GcOptions {
        keep: args.keep as usize,
        dry_run: args.dry_run,
        sdd,
    };
    let r = gc(&store, &opts, &who, konductor_core::time::now())?;
    if args.output.json {
        out!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(0);
    }
    let list = |v: &[String]| {
        if v.len() <= 12 {
            v.join(", ")
        } else {
            format!("{}, …, {}", v[..6].join(", "), v[v.len() - 3..].join(", "))
        }
    };
    let verb = if args.dry_run {
        "would archive"
    } else {
        "archived"
    };
    out!("kept {} finished train(s): {}", r.kept.len(), list(&r.kept));
    out!(
        "{verb} {} train(s) to {ARCHIVE_REF}: {}",
        r.archived.len(),
        list(&r.archived)
    );
    if !r.finished_interrupted.is_empty() {
        out!(
            "finished an interrupted run for: {}",
            list(&r.finished_interrupted)
        );
    }
    if !r.changed.is_empty() {
        out!(
            "left {} tag(s) that changed on the remote while gc ran (the next run collects them): {}",
            r.changed.len(),
            list(&r.changed)
        );
    }
    for (t, why) in &r.live {
        out!("not collected: train {t} ({why})");
    }
    if !r.pruned_claims.is_empty() {
        out!(
            "{} {} environment claim(s) to {ARCHIVE_REF}: {}",
            if args.dry_run {
                "would archive and delete"
            } else {
                "archived and deleted"
            },
            r.pruned_claims.len(),
            list(&r.pruned_claims)
        );
    }
    out!(
        "{} {} tag(s)",
        if args.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        r.deleted_tags
    );
    Ok(0)
}
