use clap::Args;
use konductor_core::ops::{discover, refresh_train, train_glob, DEFAULT_HORIZON};
use konductor_core::report::log_events;

use crate::out;

/// Print the audit trail of a train (or of the newest trains), in time order
///
/// Every event — train opened, triggers, states, unblocks, retries, cancels, timeouts —
/// with who, when, commit and info, read from the tags alone.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: Option<String>,
    /// How many of the newest train numbers to include
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HORIZON)]
    pub horizon: u32,
    #[command(flatten)]
    pub remote: crate::cli::RemoteArgs,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
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
    let events = log_events(&records);
    if args.output.json {
        for e in &events {
            out!("{}", serde_json::to_string(e)?);
        }
        return Ok(0);
    }
    for e in &events {
        let what = match (&e.step, e.attempt) {
            (Some(s), Some(a)) => format!("{s}.{a}"),
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
