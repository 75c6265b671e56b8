//! Environments: the facts about other trains the planner decides a deploy step from,
//! computed the same way by every reader (`tick`, `status`, `retry`, the board) from the
//! claim tags `env=<environment>.<turn>` and the trains' own tags.
//!
//! What keeps deploys safe is the claims alone: the environment's high-water mark (the
//! newest train that ever claimed it) and its holder come from them, whatever trains a
//! reader follows. The trains a reader follows add two things: which of them are ready
//! to deploy (so the newest goes first), and deploys in flight that hold no claim (trains
//! triggered before environments were declared).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::git::store::Store;
use crate::model::env::{combine, Claim, Environments, SeenClaim, SeenTrain};
use crate::model::plan::standing;
use crate::model::sdd::Sdd;
use crate::model::tag::TrainId;
use crate::model::train::{message_field, Observed};

#[allow(unused_imports)]
use super::*;

/// One train as the environment facts see it: per environment of its graph, where its
/// deploy step stands.
struct Seen {
    commit: String,
    envs: BTreeMap<String, SeenTrain>,
}

/// Where train `t` stands with each environment of its graph, or `None` when it cannot
/// be read (junk, no `sdd.yaml`): such a train takes no part.
fn see(store: &Store, t: TrainId, sdd: Option<&Sdd>, now: i64) -> Option<Seen> {
    let mut obs: Observed = observe(store, t).ok()?;
    let sdd = train_sdd(store, &obs, sdd).ok()?;
    let target = sdd.default_target().ok()?.to_string();
    obs.retain_steps(|s| sdd.step(s).is_some());
    let mut out = Seen {
        commit: obs.commit.clone(),
        envs: BTreeMap::new(),
    };
    out.envs = standing(&sdd, &target, &obs, now);
    Some(out)
}

/// The facts of every environment named by the graphs of `trains`, from the claims and
/// those trains' tags. `sdd` overrides every train's graph, as `--sdd` does.
pub fn environments(
    store: &Store,
    trains: &BTreeSet<TrainId>,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<Environments> {
    let mut seen: BTreeMap<TrainId, Seen> = BTreeMap::new();
    for &t in trains {
        if let Some(s) = see(store, t, sdd, now) {
            seen.insert(t, s);
        }
    }
    let names: BTreeSet<String> = seen.values().flat_map(|s| s.envs.keys().cloned()).collect();
    if names.is_empty() {
        return Ok(Environments::new());
    }
    store.refresh(
        &names
            .iter()
            .flat_map(|e| [Claim::glob(e), crate::model::freeze::RecordName::glob(e)])
            .collect::<Vec<String>>(),
    )?;
    let mut out = Environments::new();
    for env in names {
        let mut claims = Vec::new();
        for r in store.tag_records(&Claim::glob(&env))? {
            let Some(c) = Claim::parse(&r.name).filter(|c| c.env == env) else {
                continue;
            };
            let trusted = !store.requires_signatures() || r.signer.is_some();
            let train = message_field(&r.message, "train")
                .and_then(|v| v.parse::<TrainId>().ok())
                .filter(|_| trusted)
                // A claim must sit on its train's commit (when the train is known here).
                .filter(|t| seen.get(t).is_none_or(|s| s.commit == r.commit));
            claims.push(SeenClaim {
                turn: c.turn,
                train,
            });
        }
        // The holder may be a train this reader does not follow: read it.
        let holder = claims
            .iter()
            .filter_map(|c| c.train.map(|t| (c.turn, t)))
            .max()
            .map(|(_, t)| t);
        if let Some(h) = holder.filter(|h| !seen.contains_key(h)) {
            if refresh_train(store, h).is_ok() {
                if let Some(s) = see(store, h, sdd, now) {
                    seen.insert(h, s);
                }
            }
        }
        let trains: BTreeMap<TrainId, SeenTrain> = seen
            .iter()
            .filter_map(|(t, s)| s.envs.get(&env).map(|e| (*t, *e)))
            .collect();
        let mut facts = combine(&claims, &trains);
        facts.controls = super::env_control::read_controls(store, &env)?;
        out.insert(env, facts);
    }
    Ok(out)
}

/// The facts a reader of train `t` plans with: the trains in the cache (which the tick's
/// discovery or an earlier command filled) and `t` itself; empty when `t`'s graph has no
/// environment.
pub fn environments_for(
    store: &Store,
    t: TrainId,
    graph: &Sdd,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<Option<Environments>> {
    if graph.environments().is_empty() {
        return Ok(None);
    }
    let mut trains = cached_trains(store)?;
    trains.insert(t);
    environments(store, &trains, sdd, now).map(Some)
}
