//! Retention: archive old finished trains, then delete their tags.
//!
//! Every push receives the remote's whole ref advertisement, so the number of live tags is
//! the one lever on push cost (see `docs/architecture.md`). `gc` keeps the newest N
//! finished trains as tags. For each older one it first writes the full record of its
//! tags (name, commit, tagger, time, message) as `trains/<N.P>.json` in one commit on the
//! archive ref, and only then deletes the tags, the train tag first (so no tick follows a
//! half-deleted train). An interrupted run loses nothing, and running it again finishes
//! the job. A train's notification markers (`notify=<N.P>=…`) are archived and deleted
//! with it. `keep` is at least 1, so the newest train number always stays a tag and
//! `start` never reuses a number.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::archive::{archive_tip, path_of, read_archived};
pub use super::archive::{archived, ArchivedTrain, ARCHIVE_REF};
use super::read::plan_observed_in;
use crate::error::{Error, Result};
use crate::git::store::{Identity, Store};
use crate::git::wire::Delete;
use crate::model::env::{claims_to_prune, Claim, Environments, CLAIM_PREFIX};
use crate::model::plan::TrainState;
use crate::model::sdd::Sdd;
use crate::model::tag::{Tag, TrainId};
use crate::model::train::message_field;
use crate::model::train::{Observed, TagRecord};

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
    /// Tags that changed on the remote after they were read: left alone (a later run
    /// archives and collects them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Environment claims (`env=<env>.<turn>`) archived to `claims/<env>.json` and
    /// deleted (see [`claims_to_prune`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned_claims: Vec<String>,
}

/// Archive and delete all but the newest `keep` finished trains.
pub fn gc(store: &Store, opts: &GcOptions, who: &Identity, now: i64) -> Result<GcReport> {
    // Everything under `release=`: gc is the one command that reads the whole history,
    // straight from the remote's listing (no refs in the cache), in one pass.
    // Per train, its records and, in the same order, the ids the remote advertised (the
    // compare-and-swap values of the deletes).
    let mut records_of: BTreeMap<TrainId, Vec<TagRecord>> = BTreeMap::new();
    let mut oids_of: BTreeMap<TrainId, Vec<String>> = BTreeMap::new();
    // Notification markers (`notify=<N.P>=…`, see `ops::notify`) go with their train:
    // archived in its record and deleted with its other tags.
    for (r, oid) in store.remote_tag_records_in(&["release=", "notify="])? {
        let train = match Tag::parse_any(&r.name) {
            Ok(Some(tag)) => Some(tag.train()),
            _ => crate::model::notify::marker_train(&r.name).and_then(|t| t.parse().ok()),
        };
        if let Some(t) = train {
            oids_of.entry(t).or_default().push(oid);
            records_of.entry(t).or_default().push(r);
        }
    }
    let has_train_tag = |t: &TrainId| {
        let name = Tag::Train(*t).to_string();
        records_of[t].iter().any(|r| r.name == name)
    };
    let signed = store.requires_signatures();
    // Graphs are read once per commit.
    let mut graphs: BTreeMap<String, Sdd> = BTreeMap::new();
    let mut report = GcReport::default();
    let mut finished: Vec<(TrainId, TrainState)> = Vec::new();
    let mut orphans: Vec<TrainId> = Vec::new();
    for t in records_of.keys() {
        if !has_train_tag(t) {
            orphans.push(*t);
            continue;
        }
        let planned = Observed::from_records_checked(*t, &records_of[t], signed)
            .ok_or_else(|| Error::input(format!("train {t} has no trusted train tag")))
            .and_then(|obs| {
                let sdd = match &opts.sdd {
                    Some(s) => s.clone(),
                    None => match graphs.get(&obs.commit) {
                        Some(g) => g.clone(),
                        None => {
                            let g = super::read::train_sdd(store, &obs, None)?;
                            graphs.insert(obs.commit.clone(), g.clone());
                            g
                        }
                    },
                };
                // Without environment facts: a superseded train is finished once its
                // superseded tag is recorded, which a tick does.
                plan_observed_in(
                    store,
                    obs,
                    Some(&sdd),
                    None,
                    now,
                    Some(&Environments::new()),
                )
            });
        match planned {
            Ok(p) => match p.plan.state {
                TrainState::Succeeded
                | TrainState::Failed
                | TrainState::Cancelled
                | TrainState::Superseded => finished.push((*t, p.plan.state)),
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
    // Environment claims: keep the newest, the holder, the high-water mark and those of
    // trains that keep their tags; the rest are archived and deleted with the trains.
    let claim_recs: Vec<(TagRecord, String)> = store
        .remote_tag_records(CLAIM_PREFIX)?
        .into_iter()
        .filter(|(r, _)| Claim::parse(&r.name).is_some())
        .collect();
    let parsed: Vec<(Claim, Option<TrainId>)> = claim_recs
        .iter()
        .map(|(r, _)| {
            let trusted = !signed || r.signer.is_some();
            let train = message_field(&r.message, "train")
                .and_then(|v| v.parse::<TrainId>().ok())
                .filter(|_| trusted);
            (Claim::parse(&r.name).expect("filtered above"), train)
        })
        .collect();
    let live: BTreeSet<TrainId> = records_of
        .keys()
        .copied()
        .filter(|t| has_train_tag(t) && !old.iter().any(|(o, _)| o == t))
        .collect();
    let prune = claims_to_prune(&parsed, &live);
    if opts.dry_run {
        report.pruned_claims = prune
            .iter()
            .map(|&i| claim_recs[i].0.name.clone())
            .collect();
        report.archived = old.iter().map(|(t, _)| t.to_string()).collect();
        report.finished_interrupted = orphan_done.iter().map(|t| t.to_string()).collect();
        report.deleted_tags = old
            .iter()
            .map(|(t, _)| records_of[t].len())
            .chain(orphan_done.iter().map(|t| records_of[t].len()))
            .sum();
        return Ok(report);
    }
    // 1. Archive, all in one commit, compare-and-swap on the archive ref. Orphans the
    // archive has are archived again if a tag changed since (their state stays).
    let same = |a: &TagRecord, b: &TagRecord| {
        (&a.name, &a.commit, &a.tagger, a.time, &a.message)
            == (&b.name, &b.commit, &b.tagger, b.time, &b.message)
    };
    let mut files = Vec::new();
    let todo = old
        .iter()
        .map(|(t, s)| (*t, Some(s.as_str().to_string())))
        .chain(orphan_done.iter().map(|t| (*t, None)));
    for (t, state) in todo {
        let records: Vec<TagRecord> = records_of.get(&t).cloned().unwrap_or_default();
        let prior = match &tip {
            Some(tip) => read_archived(store, tip, t)?,
            None => None,
        };
        let covered = prior
            .as_ref()
            .is_some_and(|a| records.iter().all(|r| a.tags.iter().any(|p| same(p, r))));
        if covered {
            continue;
        }
        // Keep everything an earlier run archived (a tag that changed since keeps both
        // versions).
        let mut all = records.clone();
        let state = match (state, &prior) {
            (Some(s), _) => s,
            (None, Some(p)) => p.state.clone(),
            (None, None) => continue,
        };
        if let Some(p) = prior {
            all.extend(
                p.tags
                    .into_iter()
                    .filter(|r| !records.iter().any(|c| same(c, r))),
            );
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let rec = ArchivedTrain {
            train: t.to_string(),
            state,
            archived_at: crate::model::time::rfc3339(now),
            archived_by: who.to_string(),
            tags: all,
        };
        let json = serde_json::to_vec_pretty(&rec).map_err(|e| Error::input(e.to_string()))?;
        // Into the object store now: only the id stays in memory.
        files.push((path_of(t), store.write_blob(&json)?));
    }
    // The pruned claims, per environment, next to what earlier runs archived.
    let mut by_env: BTreeMap<&str, Vec<TagRecord>> = BTreeMap::new();
    for &i in &prune {
        by_env
            .entry(parsed[i].0.env.as_str())
            .or_default()
            .push(claim_recs[i].0.clone());
    }
    let mut claim_files = Vec::new();
    for (env, mut recs) in by_env {
        let path = format!("claims/{env}.json");
        if let Some(tip) = &tip {
            if let Some(data) = store.read_file_at(tip, &path)? {
                let prior: Vec<TagRecord> = serde_json::from_slice(&data).unwrap_or_default();
                let fresh: Vec<TagRecord> = prior
                    .into_iter()
                    .filter(|p| !recs.iter().any(|r| same(p, r)))
                    .collect();
                recs.extend(fresh);
            }
        }
        recs.sort_by_key(|r| Claim::parse(&r.name).map(|c| c.turn));
        let json = serde_json::to_vec_pretty(&recs).map_err(|e| Error::input(e.to_string()))?;
        claim_files.push((path, store.write_blob(&json)?));
    }
    if !files.is_empty() || !claim_files.is_empty() {
        let list: Vec<String> = files
            .iter()
            .map(|(p, _)| {
                p.trim_start_matches("trains/")
                    .trim_end_matches(".json")
                    .to_string()
            })
            .collect();
        let shown = if list.len() > 20 {
            format!("{}, … ({} more)", list[..20].join(", "), list.len() - 20)
        } else {
            list.join(", ")
        };
        let msg = format!(
            "archive {} train(s): {shown}{}\n\nby: {who}\n",
            list.len(),
            if prune.is_empty() {
                String::new()
            } else {
                format!("; {} environment claim(s)", prune.len())
            }
        );
        files.extend(claim_files);
        let commit = store.commit_update(tip.as_deref(), &files, &msg, who, now)?;
        store.push_ref_cas(ARCHIVE_REF, &commit, tip.as_deref())?;
    }
    // 2. Delete (every push receives the whole advertisement, so few large pushes beat
    // many small ones; the store batches), each only if it still has the id read above:
    // all the train tags first, so that no tick follows a half-deleted train, then the rest. What is left after an interruption is orphans,
    // which the next run finishes (the archive already holds them).
    let mut doomed: Vec<TrainId> = old
        .iter()
        .map(|(t, _)| *t)
        .chain(orphan_done.iter().copied())
        .collect();
    // A train judged finished can become live while gc works (`konductor retry` pushes a
    // new trigger). Re-check under the archive's compare-and-swap: a doomed train with a
    // tag gc did not read is left alone (the next run archives it again).
    let grew = |store: &Store, doomed: &[TrainId]| -> Result<BTreeMap<TrainId, String>> {
        let mut out = BTreeMap::new();
        for r in store.ls_remote()? {
            let Some(name) = r.name.strip_prefix("refs/tags/") else {
                continue;
            };
            if let Ok(Some(tag)) = Tag::parse_any(name) {
                let t = tag.train();
                if doomed.contains(&t) && !records_of[&t].iter().any(|x| x.name == name) {
                    out.entry(t).or_insert_with(|| name.to_string());
                }
            }
        }
        Ok(out)
    };
    let live_again = |report: &mut GcReport, t: TrainId, tag: &str, restored: bool| {
        report.live.push((
            t.to_string(),
            format!(
                "became live while gc worked (`{tag}` appeared){}; left for a later run",
                if restored { ", train tag restored" } else { "" }
            ),
        ));
    };
    for (t, tag) in grew(store, &doomed)? {
        if old.iter().any(|(o, _)| *o == t) {
            live_again(&mut report, t, &tag, false);
            doomed.retain(|d| *d != t);
        }
    }
    // The deletes of the doomed trains' tags: train tags (`true`) or the others.
    let deletes = |doomed: &[TrainId], train_tags: bool| -> Vec<Delete> {
        doomed
            .iter()
            .flat_map(|t| {
                let train_tag = Tag::Train(*t).to_string();
                records_of[t]
                    .iter()
                    .zip(&oids_of[t])
                    .filter(move |(r, _)| (r.name == train_tag) == train_tags)
                    .map(|(r, oid)| Delete {
                        refname: format!("refs/tags/{}", r.name),
                        old: oid.clone(),
                    })
            })
            .collect()
    };
    let train_deletes = deletes(&doomed, true);
    let mut changed = store.push_delete(&train_deletes)?;
    let mut restored = 0;
    // Between that re-check and the train tags' deletion, a retry may have landed: its
    // train gets its train tag back (the same object, create-only) and keeps its other
    // tags. A retry that lands after this second look finds its train gone, withdraws its
    // trigger and says so (`ops::retry`).
    for (t, tag) in grew(store, &doomed)? {
        if !old.iter().any(|(o, _)| *o == t) {
            continue;
        }
        let name = Tag::Train(t).to_string();
        let id = records_of[&t]
            .iter()
            .zip(&oids_of[&t])
            .find(|(r, _)| r.name == name)
            .map(|(_, id)| id.clone());
        if let Some(id) = id {
            store.push_tag_create(&name, &id)?;
            restored += 1;
        }
        live_again(&mut report, t, &tag, true);
        doomed.retain(|d| *d != t);
    }
    let other_deletes = deletes(&doomed, false);
    changed.extend(store.push_delete(&other_deletes)?);
    // 3. The pruned claims, each only if unchanged (they are archived above).
    let claim_deletes: Vec<Delete> = prune
        .iter()
        .map(|&i| Delete {
            refname: format!("refs/tags/{}", claim_recs[i].0.name),
            old: claim_recs[i].1.clone(),
        })
        .collect();
    let claims_changed = if claim_deletes.is_empty() {
        Vec::new()
    } else {
        store.push_delete(&claim_deletes)?
    };
    report.pruned_claims = claim_deletes
        .iter()
        .filter(|d| !claims_changed.contains(&d.refname))
        .map(|d| d.refname.trim_start_matches("refs/tags/").to_string())
        .collect();
    report.deleted_tags =
        (train_deletes.len() + other_deletes.len()).saturating_sub(changed.len() + restored);
    changed.extend(claims_changed);
    report.changed = changed
        .iter()
        .map(|r| r.trim_start_matches("refs/tags/").to_string())
        .collect();
    report.archived = old
        .iter()
        .filter(|(t, _)| doomed.contains(t))
        .map(|(t, _)| t.to_string())
        .collect();
    report.finished_interrupted = orphan_done.iter().map(|t| t.to_string()).collect();
    Ok(report)
}
