//! Retention: archive old finished trains, then delete their tags.
//!
//! Every push receives the remote's whole ref advertisement, so the number of live tags is
//! the one lever on push cost (see `docs/architecture.md`). `gc` keeps the newest N
//! finished trains as tags. For each older one it first writes the full record of its
//! tags (name, commit, tagger, time, message) as `trains/<N.P>.json` in one commit on the
//! archive ref, and only then deletes the tags, the train tag first (so no tick follows a
//! half-deleted train). An interrupted run loses nothing, and running it again finishes
//! the job. `keep` is at least 1, so the newest train number always stays a tag and
//! `start` never reuses a number.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ops::{plan_train, train_glob};
use crate::plan::TrainState;
use crate::sdd::Sdd;
use crate::store::{Identity, Store};
use crate::tag::{Tag, TrainId};
use crate::train::TagRecord;

/// The ref that holds archived trains.
pub const ARCHIVE_REF: &str = "refs/konductor/archive";

/// One archived train, as stored in `trains/<N.P>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedTrain {
    /// `N.P`.
    pub train: String,
    /// Its state when archived.
    pub state: String,
    /// When it was archived (RFC 3339).
    pub archived_at: String,
    /// Who archived it.
    pub archived_by: String,
    /// Every tag of the train.
    pub tags: Vec<TagRecord>,
}

/// Options for `gc`.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// How many finished trains to keep as tags.
    pub keep: usize,
    /// Report what would happen; change nothing.
    pub dry_run: bool,
    /// Graph override (else each train's own `sdd.yaml`).
    pub sdd: Option<Sdd>,
}

/// What `gc` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Finished trains kept as tags.
    pub kept: Vec<String>,
    /// Trains archived (and whose tags were deleted) in this run.
    pub archived: Vec<String>,
    /// Trains never collected: running or blocked (or unreadable), with the reason.
    pub live: Vec<(String, String)>,
    /// Tags deleted.
    pub deleted_tags: usize,
    /// Tags of trains archived earlier, left behind by an interrupted run, now deleted.
    pub finished_interrupted: Vec<String>,
}

fn path_of(t: TrainId) -> String {
    format!("trains/{t}.json")
}

/// The archive's tip, fetched (full history: the next archive commit builds on it).
fn archive_tip(store: &Store) -> Result<Option<String>> {
    if store.fetch_ref(ARCHIVE_REF)? {
        Ok(store.ref_target(ARCHIVE_REF))
    } else {
        Ok(None)
    }
}

/// The archived record of one train, if the archive has it.
pub fn archived(store: &Store, t: TrainId) -> Result<Option<ArchivedTrain>> {
    let Some(tip) = archive_tip(store)? else {
        return Ok(None);
    };
    read_archived(store, &tip, t)
}

fn read_archived(store: &Store, tip: &str, t: TrainId) -> Result<Option<ArchivedTrain>> {
    match store.read_file_at(tip, &path_of(t))? {
        None => Ok(None),
        Some(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
            Error::Remote(format!(
                "the archive's record of train {t} is unreadable: {e}"
            ))
        }),
    }
}

/// Archive and delete all but the newest `keep` finished trains.
pub fn gc(store: &Store, opts: &GcOptions, who: &Identity, now: i64) -> Result<GcReport> {
    // Everything under `release=`: gc is the one command that reads the whole history.
    store.refresh(&["release=*".to_string()])?;
    let mut by_train: BTreeMap<TrainId, Vec<String>> = BTreeMap::new();
    for n in store.tag_names("release=*")? {
        if let Ok(Some(tag)) = Tag::parse_any(&n) {
            by_train.entry(tag.train()).or_default().push(n);
        }
    }
    let mut report = GcReport::default();
    let mut finished: Vec<(TrainId, TrainState)> = Vec::new();
    let mut orphans: Vec<TrainId> = Vec::new();
    for (t, names) in &by_train {
        if !names.iter().any(|n| *n == Tag::Train(*t).to_string()) {
            orphans.push(*t);
            continue;
        }
        match plan_train(store, *t, opts.sdd.as_ref(), None, now) {
            Ok(p) => match p.plan.state {
                TrainState::Succeeded | TrainState::Failed | TrainState::Cancelled => {
                    finished.push((*t, p.plan.state))
                }
                s => report.live.push((t.to_string(), s.as_str().to_string())),
            },
            Err(e) => report
                .live
                .push((t.to_string(), format!("not collected: {e}"))),
        }
    }
    finished.sort_by_key(|f| std::cmp::Reverse(f.0));
    // The newest train that reached its target is in production: always keep it (changed-
    // file gates compare against it), on top of the newest `keep`.
    let prod = finished.iter().position(|f| f.1 == TrainState::Succeeded);
    let (mut keep, mut old): (Vec<_>, Vec<_>) = finished
        .iter()
        .enumerate()
        .partition(|(i, _)| *i < opts.keep || Some(*i) == prod);
    let keep: Vec<(TrainId, TrainState)> = keep.drain(..).map(|(_, f)| *f).collect();
    let old: Vec<(TrainId, TrainState)> = old.drain(..).map(|(_, f)| *f).collect();
    report.kept = keep.iter().map(|(t, _)| t.to_string()).collect();
    let old = &old[..];
    let tip = archive_tip(store)?;
    // Orphans: tags of a train whose train tag is gone. If the archive has the train, an
    // earlier gc was interrupted while deleting: finish it. Otherwise leave them alone.
    let mut orphan_done = Vec::new();
    if let Some(tip) = &tip {
        for t in &orphans {
            if read_archived(store, tip, *t)?.is_some() {
                orphan_done.push(*t);
            }
        }
    }
    if opts.dry_run {
        report.archived = old.iter().map(|(t, _)| t.to_string()).collect();
        report.finished_interrupted = orphan_done.iter().map(|t| t.to_string()).collect();
        report.deleted_tags = old
            .iter()
            .map(|(t, _)| by_train[t].len())
            .chain(orphan_done.iter().map(|t| by_train[t].len()))
            .sum();
        return Ok(report);
    }
    // 1. Archive, all in one commit, compare-and-swap on the archive ref.
    let mut files = Vec::new();
    for (t, state) in old {
        let records: Vec<TagRecord> = store
            .tag_records(&train_glob(*t))?
            .into_iter()
            .filter(|r| matches!(Tag::parse_any(&r.name), Ok(Some(x)) if x.train() == *t))
            .collect();
        let names: BTreeSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        let prior = match &tip {
            Some(tip) => read_archived(store, tip, *t)?,
            None => None,
        };
        let covered = prior.as_ref().is_some_and(|a| {
            let have: BTreeSet<&str> = a.tags.iter().map(|r| r.name.as_str()).collect();
            names.is_subset(&have)
        });
        if covered {
            continue;
        }
        // Keep anything an earlier run archived that is no longer a tag.
        let mut all = records.clone();
        if let Some(p) = prior {
            all.extend(
                p.tags
                    .into_iter()
                    .filter(|r| !names.contains(r.name.as_str())),
            );
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let rec = ArchivedTrain {
            train: t.to_string(),
            state: state.as_str().to_string(),
            archived_at: crate::time::rfc3339(now),
            archived_by: who.to_string(),
            tags: all,
        };
        let json = serde_json::to_vec_pretty(&rec).map_err(|e| Error::input(e.to_string()))?;
        files.push((path_of(*t), json));
    }
    if !files.is_empty() {
        let list: Vec<String> = files
            .iter()
            .map(|(p, _)| {
                p.trim_start_matches("trains/")
                    .trim_end_matches(".json")
                    .to_string()
            })
            .collect();
        let msg = format!(
            "archive {} train(s): {}\n\nby: {who}\n",
            list.len(),
            list.join(", ")
        );
        let commit = store.commit_update(tip.as_deref(), &files, &msg, who, now)?;
        store.push_ref_cas(ARCHIVE_REF, &commit, tip.as_deref())?;
    }
    // 2. Delete, train by train.
    for (t, _) in old {
        report.deleted_tags += delete_train(store, *t, &by_train[t])?;
        report.archived.push(t.to_string());
    }
    for t in orphan_done {
        report.deleted_tags += delete_train(store, t, &by_train[&t])?;
        report.finished_interrupted.push(t.to_string());
    }
    Ok(report)
}

fn delete_train(store: &Store, t: TrainId, names: &[String]) -> Result<usize> {
    // The train tag first: from then on no tick follows the train, and whatever tags are
    // left are orphans that the next run finishes (the archive already holds them).
    let train_tag = Tag::Train(t).to_string();
    if names.contains(&train_tag) {
        store.push_delete(&[format!("refs/tags/{train_tag}")])?;
    }
    let others: Vec<String> = names
        .iter()
        .filter(|n| **n != train_tag)
        .map(|n| format!("refs/tags/{n}"))
        .collect();
    for chunk in others.chunks(500) {
        store.push_delete(chunk)?;
    }
    Ok(names.len())
}
