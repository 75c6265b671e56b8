use clap::Args;
use konductor_core::ops::{discover, refresh_train, train_glob, DEFAULT_HORIZON};
use std::collections::BTreeMap;

use konductor_core::model::env::Claim;
use konductor_core::model::freeze::RecordName;
use konductor_core::report::log_events_causal;
use konductor_core::sdd::Sdd;
use konductor_core::store::Store;
use konductor_core::tag::Tag;
use konductor_core::train::{message_field, Observed, TagRecord};

use crate::out;

/// Print the audit trail of a train (or of the newest trains), in causal order
///
/// Every event — train opened, triggers, states, unblocks, retries, cancels, timeouts,
/// environment claims (`env=…`) and superseded steps — with who, when, commit and info,
/// read from the tags alone. What caused what comes
/// first (a trigger after the unblock or success that allowed it, a state after its
/// trigger), then time.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # who did what on train 1.0\n  konductor log --train 1.0\n  # the newest trains, one JSON object per line\n  konductor log --json"
)]
pub struct LogArgs {
    /// Only this train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: Option<String>,
    /// How many of the newest train numbers to include
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HORIZON)]
    pub horizon: u32,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_log(args: LogArgs) -> anyhow::Result<i32> {
    let store = args.remote.open()?;
    let mut records = Vec::new();
    match args.train.as_deref().map(super::parse_train).transpose()? {
        Some(t) => {
            refresh_train(&store, t)?;
            records = store.tag_records(&train_glob(t))?;
            records.retain(|r| {
                konductor_core::tag::Tag::parse_any(&r.name)
                    .map_or(true, |x| x.is_some_and(|x| x.train() == t))
            });
            if !records.iter().any(|r| r.name == format!("release={t}")) {
                match konductor_core::gc::archived(&store, t)? {
                    Some(a) => records = a.tags,
                    None => {
                        return Err(konductor_core::error::Error::input(format!(
                            "train `{t}` does not exist on `{}`",
                            store.remote().url
                        ))
                        .into())
                    }
                }
            }
        }
        None => {
            let found = discover(&store, args.horizon.max(1), false)?;
            super::warn_ignored(&found);
            for t in found.trains {
                records.extend(store.tag_records(&train_glob(t))?.into_iter().filter(|r| {
                    konductor_core::tag::Tag::parse_any(&r.name)
                        .map_or(true, |x| x.is_some_and(|x| x.train() == t))
                }));
            }
        }
    }
    let graphs = graphs(&store, &records);
    records.extend(claims_of(&store, &graphs, args.train.is_some())?);
    let events = log_events_causal(&records, &graphs);
    if args.output.json {
        for e in &events {
            out!("{}", serde_json::to_string(e)?);
        }
        return Ok(0);
    }
    for e in &events {
        let what = match (&e.step, e.attempt) {
            (Some(s), Some(a)) => match e.rerun {
                Some(k) => format!("{s}.{a} re-run {k}"),
                None => format!("{s}.{a}"),
            },
            (Some(s), None) => s.clone(),
            _ => String::new(),
        };
        out!(
            "{}  {:<6} {:<10} {:<40} {:<10} {}  {}",
            e.at,
            e.train,
            e.event,
            what,
            &e.commit[..e.commit.len().min(10)],
            if e.verified == Some(false) {
                format!("{} (unverified)", e.by)
            } else {
                e.by.clone()
            },
            e.info
        );
    }
    Ok(0)
}

/// The environment claims (`env=<env>.<turn>`) the listed trains made, and the
/// environments' freeze and pin records (`env=<env>=<k>`), for the environments their
/// graphs declare.
fn claims_of(
    store: &Store,
    graphs: &BTreeMap<String, Sdd>,
    only_train: bool,
) -> anyhow::Result<Vec<TagRecord>> {
    let envs: std::collections::BTreeSet<&str> = graphs
        .values()
        .flat_map(|g| g.environments().into_iter().map(|(e, _)| e))
        .collect();
    if envs.is_empty() {
        return Ok(Vec::new());
    }
    let claims: Vec<String> = envs.iter().map(|e| Claim::glob(e)).collect();
    let records: Vec<String> = envs.iter().map(|e| RecordName::glob(e)).collect();
    store.refresh(&[claims.clone(), records.clone()].concat())?;
    let mut out = Vec::new();
    for g in &claims {
        out.extend(store.tag_records(g)?.into_iter().filter(|r| {
            Claim::parse(&r.name).is_some()
                && message_field(&r.message, "train").is_some_and(|t| graphs.contains_key(t))
        }));
    }
    // Freezes and pins: with `--train`, those naming the train (a rollback to it); else
    // every one.
    for g in &records {
        out.extend(store.tag_records(g)?.into_iter().filter(|r| {
            RecordName::parse(&r.name).is_some()
                && (!only_train
                    || message_field(&r.message, "train").is_some_and(|t| graphs.contains_key(t)))
        }));
    }
    Ok(out)
}

/// Each train's step graph (`sdd.yaml` at its commit), which orders a trigger after the
/// dependencies that allowed it. A train whose graph cannot be read is ordered without.
fn graphs(store: &Store, records: &[TagRecord]) -> BTreeMap<String, Sdd> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Ok(Some(Tag::Train(t))) = Tag::parse_any(&r.name) {
            let sdd = Observed::from_records(t, records).and_then(|obs| {
                let _ = store.ensure_commit(&obs.commit);
                konductor_core::ops::train_sdd(store, &obs, None).ok()
            });
            if let Some(sdd) = sdd {
                out.insert(t.to_string(), sdd);
            }
        }
    }
    out
}
