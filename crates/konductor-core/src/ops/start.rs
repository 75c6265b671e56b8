//! Opening trains: `start` and hotfixes.

use crate::error::{Error, Result};
use crate::git::store::{Identity, PushOutcome, Store};
use crate::model::tag::{Tag, TrainId, MAX_PATCH, MAX_TRAIN};

#[allow(unused_imports)]
use super::*;

/// Options for `start`.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The commit.
    pub sha: String,
    /// Open a hotfix `N.(P+1)` of train N instead of a new train.
    pub hotfix: Option<u32>,
}

/// Open a train. Create-only: a racing start takes the next number.
pub fn start(store: &Store, opts: &StartOptions, who: &Identity, now: i64) -> Result<TrainId> {
    let commit = store.ensure_commit(&opts.sha)?;
    let mut id = match opts.hotfix {
        Some(n) => {
            store.refresh(&[format!("release={n}.*")])?;
            let patches: Vec<u32> = cached_trains(store)?
                .into_iter()
                .filter(|t| t.number == n)
                .map(|t| t.patch)
                .collect();
            if patches.is_empty() {
                return Err(Error::input(format!(
                    "cannot open a hotfix of train {n}: train `{n}.0` does not exist on `{}`",
                    store.remote().url
                )));
            }
            TrainId::new(
                n,
                next_number(
                    patches.iter().max().copied().unwrap_or(0),
                    MAX_PATCH,
                    "patch number",
                )?,
            )
        }
        None => {
            // Numbering follows the real trains: junk never raises it (a junk tag that
            // squats the next number is skipped by the create-only push below).
            let known = discover(store, 1, false)?.trains;
            TrainId::new(
                next_number(
                    known.iter().map(|t| t.number).max().unwrap_or(0),
                    MAX_TRAIN,
                    "train number",
                )?,
                0,
            )
        }
    };
    for _ in 0..1000 {
        let name = Tag::Train(id).to_string();
        let msg = format!("train {id}\n\nopened-by: {who}\ncommit: {commit}\n");
        let oid = store.make_tag(&name, &commit, &msg, who, now)?;
        match store.push_tag_create(&name, &oid)? {
            PushOutcome::Created => return Ok(id),
            PushOutcome::AlreadyExists(_) => {
                id = match opts.hotfix {
                    Some(_) => {
                        TrainId::new(id.number, next_number(id.patch, MAX_PATCH, "patch number")?)
                    }
                    None => TrainId::new(next_number(id.number, MAX_TRAIN, "train number")?, 0),
                };
            }
        }
    }
    Err(Error::Conflict(
        "could not find a free train number after 1000 tries".into(),
    ))
}

/// `n + 1`, unless that passes `max`, the largest the tag protocol reads.
pub(crate) fn next_number(n: u32, max: u32, what: &str) -> Result<u32> {
    n.checked_add(1).filter(|&m| m <= max).ok_or_else(|| {
        Error::input(format!(
            "no {what} left: `{n}` is the largest the tag protocol allows ({max})"
        ))
    })
}
