//! Train discovery: which trains a reading command follows.
//!
//! A *real* train is a train tag `release=N.P` that Konductor could have opened: an
//! annotated tag (signed by an allowed signer when verification is on) on a commit whose
//! tree has `sdd.yaml` (unless the command was given `--sdd`). Anything else under a
//! train tag's name (a lightweight tag, a tag on a tree or a blob, a commit without a
//! graph) is *ignored with a warning*: it never counts toward the horizon, never hides a
//! real train, and never raises the number `start` opens next.
//!
//! The horizon counts real train numbers, newest first. How they are found:
//! - **Warm cache:** the trains the cache knows, refreshed, plus probes of the
//!   [`PROBE_WIDTH`] numbers above the highest real one (train numbers are consecutive:
//!   `start` takes the next free one). Each number found there moves the window up; after
//!   [`PROBE_ROUNDS`] rounds the remote is listed instead.
//! - **Cold cache (or too many probe rounds):** one listing of the remote's refs, then the
//!   train tags themselves are fetched newest first, in batches of [`JUDGE_BATCH`] names,
//!   and judged until the horizon holds enough real numbers.
//!
//! The work one hostile tag can cause is bounded: one name in a listing, one name in a
//! batched fetch, one local judgement; numbers are added with checked arithmetic, so the
//! largest number the grammar accepts ends the probe instead of wrapping.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::Result;
use crate::git::store::Store;
use crate::model::tag::{Tag, TrainId};
use crate::model::train::short;

/// Numbers probed above the highest real train, per round.
pub const PROBE_WIDTH: u32 = 3;
/// Probe rounds before a warm cache lists the remote instead.
pub const PROBE_ROUNDS: u32 = 8;
/// Train tag names fetched per batch when judging from a listing.
pub const JUDGE_BATCH: usize = 500;
/// Ignored train tags named in a command's warnings; the rest are counted.
pub const SHOWN_IGNORED: usize = 5;

/// A train tag that is not a real train, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredTrain {
    /// The tag name.
    pub tag: String,
    /// Why it is not a train.
    pub reason: String,
}

/// What discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The real trains within the horizon (every patch of each followed number).
    pub trains: BTreeSet<TrainId>,
    /// Train tags seen and ignored, newest first.
    pub ignored: Vec<IgnoredTrain>,
}

impl Discovery {
    /// See [`ignored_warnings`].
    pub fn warnings(&self) -> Vec<String> {
        ignored_warnings(&self.ignored)
    }
}

/// One warning line per ignored train tag, at most [`SHOWN_IGNORED`], then a count.
pub fn ignored_warnings(ignored: &[IgnoredTrain]) -> Vec<String> {
    let mut out: Vec<String> = ignored
        .iter()
        .take(SHOWN_IGNORED)
        .map(|i| format!("ignored train tag `{}`: {}", i.tag, i.reason))
        .collect();
    if ignored.len() > SHOWN_IGNORED {
        out.push(format!(
            "… and {} more ignored train tag(s) (`--json` lists them all)",
            ignored.len() - SHOWN_IGNORED
        ));
    }
    out
}

/// Trains in the cache, from tag names alone (real or not).
pub fn cached_trains(store: &Store) -> Result<BTreeSet<TrainId>> {
    let mut out = BTreeSet::new();
    for n in store.tag_names("release=*")? {
        if let Ok(Some(Tag::Train(t))) = Tag::parse_any(&n) {
            out.insert(t);
        }
    }
    Ok(out)
}

/// Why the cached train tag of `t` is not a real train, or None if it is one.
/// `any_graph`: the command has its own graph (`--sdd`), so `sdd.yaml` need not exist.
pub fn judge(store: &Store, t: TrainId, any_graph: bool) -> Result<Option<String>> {
    let name = Tag::Train(t).to_string();
    let Some(rec) = store.tag_record(&name) else {
        return Ok(Some("it is gone from the remote".into()));
    };
    if rec.tagger.is_none() {
        return Ok(Some(
            "a lightweight tag (`konductor start` opens trains with annotated tags)".into(),
        ));
    }
    if store.requires_signatures() && rec.signer.is_none() {
        return Ok(Some(
            rec.signature_error
                .unwrap_or_else(|| "not signed by an allowed signer".into()),
        ));
    }
    match store.object_kind(&rec.commit) {
        Some("commit") => {}
        Some(kind) => {
            return Ok(Some(format!(
                "it points to a {kind} (`{}`), not a commit",
                short(&rec.commit)
            )))
        }
        None => {
            return Ok(Some(format!(
                "its target `{}` is missing",
                short(&rec.commit)
            )))
        }
    }
    if !any_graph && !store.has_file_at(&rec.commit, "sdd.yaml")? {
        return Ok(Some(format!(
            "its commit `{}` has no `sdd.yaml`",
            short(&rec.commit)
        )));
    }
    Ok(None)
}

/// Bring the cache up to date for the newest `horizon` real train numbers, and find new
/// trains. See the module documentation for the rules and the bounds.
pub fn discover(store: &Store, horizon: u32, any_graph: bool) -> Result<Discovery> {
    let horizon = horizon.max(1) as usize;
    let warm = !cached_trains(store)?.is_empty();
    let found = if warm {
        probe(store, horizon, any_graph)?
    } else {
        None
    };
    let (verdicts, refreshed) = match found {
        Some(v) => v,
        None => (from_listing(store, horizon, any_graph)?, BTreeSet::new()),
    };
    // The newest `horizon` real numbers, every real patch of each.
    let real_numbers: BTreeSet<u32> = verdicts
        .iter()
        .filter(|(_, why)| why.is_none())
        .map(|(t, _)| t.number)
        .collect();
    let followed: BTreeSet<u32> = real_numbers.iter().rev().take(horizon).copied().collect();
    // Make sure every followed train's tags are current: a listing fetched only train
    // tags, and a probe fetched whole trains only for the numbers it looked at.
    let pats: Vec<String> = followed
        .difference(&refreshed)
        .map(|n| format!("release={n}.*"))
        .collect();
    store.refresh(&pats)?;
    let mut d = Discovery::default();
    for (t, why) in verdicts.iter().rev() {
        match why {
            None if followed.contains(&t.number) => {
                d.trains.insert(*t);
            }
            None => {}
            Some(reason) => d.ignored.push(IgnoredTrain {
                tag: Tag::Train(*t).to_string(),
                reason: reason.clone(),
            }),
        }
    }
    Ok(d)
}

/// Each train tag judged: None for a real train, else why it is not one.
type Verdicts = BTreeMap<TrainId, Option<String>>;

fn judge_all(
    store: &Store,
    trains: impl IntoIterator<Item = TrainId>,
    any_graph: bool,
    into: &mut Verdicts,
) -> Result<()> {
    for t in trains {
        let v = judge(store, t, any_graph)?;
        into.insert(t, v);
    }
    Ok(())
}

/// The warm path: the verdicts, and the numbers whose trains it fetched whole. None: too
/// many rounds, list the remote instead.
fn probe(
    store: &Store,
    horizon: usize,
    any_graph: bool,
) -> Result<Option<(Verdicts, BTreeSet<u32>)>> {
    let mut verdicts = BTreeMap::new();
    judge_all(store, cached_trains(store)?, any_graph, &mut verdicts)?;
    // Round 0 also refreshes the followed trains (and drops what the remote no longer
    // has, e.g. trains collected by gc).
    let real: BTreeSet<u32> = verdicts
        .iter()
        .filter(|(_, why)| why.is_none())
        .map(|(t, _)| t.number)
        .collect();
    let mut refreshed: BTreeSet<u32> = real.iter().rev().take(horizon).copied().collect();
    let mut pats: Vec<String> = refreshed.iter().map(|n| format!("release={n}.*")).collect();
    let mut frontier = real.last().copied().unwrap_or(0);
    for _round in 0..=PROBE_ROUNDS {
        let window: Vec<u32> = (1..=PROBE_WIDTH)
            .filter_map(|k| frontier.checked_add(k))
            .filter(|n| *n <= crate::model::tag::MAX_TRAIN)
            .collect();
        pats.extend(window.iter().map(|n| format!("release={n}.*")));
        refreshed.extend(&window);
        store.refresh(&pats)?;
        pats.clear();
        let cached = cached_trains(store)?;
        verdicts.retain(|t, _| cached.contains(t));
        let fresh: Vec<TrainId> = cached
            .iter()
            .filter(|t| window.contains(&t.number))
            .copied()
            .collect();
        if fresh.is_empty() {
            return Ok(Some((verdicts, refreshed)));
        }
        judge_all(store, fresh.iter().copied(), any_graph, &mut verdicts)?;
        frontier = fresh.iter().map(|t| t.number).max().unwrap_or(frontier);
    }
    Ok(None)
}

/// The cold path: one listing, then the train tags newest first, judged in batches, until
/// the horizon holds `horizon` real numbers.
fn from_listing(store: &Store, horizon: usize, any_graph: bool) -> Result<Verdicts> {
    let mut listed: Vec<TrainId> = Vec::new();
    for r in store.ls_remote()? {
        let Some(name) = r.name.strip_prefix("refs/tags/") else {
            continue;
        };
        if let Ok(Some(Tag::Train(t))) = Tag::parse_any(name) {
            listed.push(t);
        }
    }
    listed.sort_unstable_by(|a, b| b.cmp(a));
    listed.dedup();
    let mut verdicts = BTreeMap::new();
    let mut real: BTreeSet<u32> = BTreeSet::new();
    for batch in listed.chunks(JUDGE_BATCH) {
        let pats: Vec<String> = batch.iter().map(|t| Tag::Train(*t).to_string()).collect();
        store.refresh(&pats)?;
        for t in batch {
            let v = judge(store, *t, any_graph)?;
            if v.is_none() {
                real.insert(t.number);
            }
            verdicts.insert(*t, v);
        }
        // Every patch of the last number counted must be judged too, so stop only once
        // the batch went below it.
        if real.len() > horizon
            || (real.len() == horizon && batch.last().map(|t| t.number) < real.first().copied())
        {
            break;
        }
    }
    Ok(verdicts)
}
