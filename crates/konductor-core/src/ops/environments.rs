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
use crate::model::env::{Claim, EnvFacts, EnvPhase, Environments};
use crate::model::plan::{plan, Action, PlanContext, StepState, TriggerReason};
use crate::model::sdd::Sdd;
use crate::model::tag::TrainId;
use crate::model::train::{message_field, Observed};

#[allow(unused_imports)]
use super::*;

/// One train as the environment facts see it: per environment of its graph, where its
/// deploy step stands.
struct Seen {
    commit: String,
    /// environment → (phase, whether any attempt of the deploy step exists)
    envs: BTreeMap<String, (Option<EnvPhase>, bool)>,
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
    if obs.cancelled.is_some() {
        return Some(out);
    }
    // The deploy step as the planner sees it without environments: a trigger it would make
    // is a train ready to deploy. Undecided conditions count as changed, as in
    // `last_reached`.
    let conditions = sdd
        .steps()
        .iter()
        .filter(|s| !s.if_changed.is_empty())
        .map(|s| (s.name.clone(), (true, String::new())))
        .collect();
    let ctx = PlanContext {
        now,
        conditions,
        environments: None,
    };
    let p = plan(&sdd, &target, &obs, &ctx);
    for (env, step) in sdd.environments() {
        let Some(v) = p.step(&step.name) else {
            continue;
        };
        let tried = obs.attempts.get(&step.name).is_some_and(|a| !a.is_empty());
        let triggers = |ready: bool| {
            p.actions.iter().any(|a| {
                matches!(a, Action::Trigger { step: s, reason, .. }
                    if *s == step.name && (*reason == TriggerReason::Ready) == ready)
            })
        };
        let phase = if tried {
            match v.state {
                StepState::Success => Some(EnvPhase::Deployed),
                StepState::Triggered | StepState::Started => Some(EnvPhase::Deploying),
                StepState::Failure if triggers(false) => Some(EnvPhase::Deploying),
                _ => None,
            }
        } else if !obs.superseded.contains_key(&step.name) && triggers(true) {
            Some(EnvPhase::Ready)
        } else {
            None
        };
        out.envs.insert(env.to_string(), (phase, tried));
    }
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
            .map(|e| Claim::glob(e))
            .collect::<Vec<String>>(),
    )?;
    let mut out = Environments::new();
    for env in names {
        let mut facts = EnvFacts::default();
        // Claims: every number counts for the next turn; only trusted ones hold.
        let mut holder: Option<(u32, TrainId)> = None;
        let mut top = 0u32;
        for r in store.tag_records(&Claim::glob(&env))? {
            let Some(c) = Claim::parse(&r.name) else {
                continue;
            };
            if c.env != env {
                continue;
            }
            top = top.max(c.turn);
            if store.requires_signatures() && r.signer.is_none() {
                continue;
            }
            let Some(t) = message_field(&r.message, "train").and_then(|v| v.parse().ok()) else {
                continue;
            };
            // A claim must sit on its train's commit (when the train is known here).
            if let Some(s) = seen.get(&t) {
                if s.commit != r.commit {
                    continue;
                }
            }
            facts.high_water = facts.high_water.max(Some(t));
            if holder.is_none_or(|(k, _)| c.turn > k) {
                holder = Some((c.turn, t));
            }
        }
        facts.next_turn = top.saturating_add(1);
        facts.holder = holder.map(|(_, t)| t);
        // The holder may be a train this reader does not follow: read it.
        if let Some(h) = facts.holder.filter(|h| !seen.contains_key(h)) {
            if refresh_train(store, h).is_ok() {
                if let Some(s) = see(store, h, sdd, now) {
                    seen.insert(h, s);
                }
            }
        }
        for (&t, s) in &seen {
            let Some(&(phase, tried)) = s.envs.get(&env) else {
                continue;
            };
            if tried {
                facts.high_water = facts.high_water.max(Some(t));
            }
            // A holder that claimed and has not triggered yet is deploying: its next tick
            // triggers.
            let phase = match phase {
                Some(EnvPhase::Ready) if facts.holder == Some(t) => Some(EnvPhase::Deploying),
                p => p,
            };
            if let Some(p) = phase {
                facts.trains.insert(t, p);
                if p == EnvPhase::Deploying {
                    facts.deploying = facts.deploying.max(Some(t));
                }
            }
        }
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
