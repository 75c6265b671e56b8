//! Reading one train: its tags, its graph, and its plan with `if_changed` conditions
//! evaluated (the one place the planner asks git a question).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::git::store::Store;
use crate::model::env::Environments;
use crate::model::plan::{plan, Action, Plan, PlanContext, TrainState};
use crate::model::sdd::Sdd;
use crate::model::tag::{Tag, TrainId};
use crate::model::train::{short, Observed};

#[allow(unused_imports)]
use super::*;

/// How many of the newest train numbers a tick without `--train` follows.
pub const DEFAULT_HORIZON: u32 = 20;

/// Glob for every tag of one train (and, harmlessly, malformed look-alikes).
pub fn train_glob(t: TrainId) -> String {
    format!("release={t}*")
}

/// Refresh one train's tags.
pub fn refresh_train(store: &Store, t: TrainId) -> Result<()> {
    store.refresh(&[train_glob(t)])
}

/// Read one train from the cache.
pub fn observe(store: &Store, t: TrainId) -> Result<Observed> {
    let records = store.tag_records(&train_glob(t))?;
    let signed = store.requires_signatures();
    Observed::from_records_checked(t, &records, signed).ok_or_else(|| {
        if signed && records.iter().any(|r| r.name == Tag::Train(t).to_string()) {
            return Error::input(format!(
                "train `{t}` on `{}` is not signed by an allowed signer; its tags are ignored",
                store.remote().url
            ));
        }
        Error::input(format!(
            "train `{t}` does not exist on `{}`",
            store.remote().url
        ))
    })
}

/// The step graph a train runs: `sdd.yaml` at its own commit, unless overridden.
pub fn train_sdd(store: &Store, obs: &Observed, override_sdd: Option<&Sdd>) -> Result<Sdd> {
    if let Some(s) = override_sdd {
        return Ok(s.clone());
    }
    let data = store
        .read_file_at(&obs.commit, "sdd.yaml")?
        .ok_or_else(|| {
            Error::input(format!(
                "train {} has no `sdd.yaml` at its commit {}; pass `--sdd FILE`",
                obs.train,
                short(&obs.commit)
            ))
        })?;
    let text = String::from_utf8_lossy(&data);
    Ok(Sdd::parse(
        &format!("sdd.yaml@{}", short(&obs.commit)),
        &text,
    )?)
}

/// Everything needed to plan one train.
pub struct Planned {
    /// The tags.
    pub obs: Observed,
    /// The graph.
    pub sdd: Sdd,
    /// The plan.
    pub plan: Plan,
}

/// Observe and plan one train (evaluating `if_changed` conditions as needed), with the
/// environment facts computed from the trains in the cache.
pub fn plan_train(
    store: &Store,
    t: TrainId,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
) -> Result<Planned> {
    let obs = observe(store, t)?;
    plan_observed(store, obs, sdd, target, now)
}

/// Like [`plan_train`], with environment facts the caller computed once for many trains
/// ([`crate::ops::environments::environments`]).
pub fn plan_train_in(
    store: &Store,
    t: TrainId,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
    envs: &Environments,
) -> Result<Planned> {
    let obs = observe(store, t)?;
    plan_observed_in(store, obs, sdd, target, now, Some(envs))
}

/// Like [`plan_train`], but a train whose tags were collected by `gc` is read from the
/// archive. The second value says whether it was.
pub fn plan_train_any(
    store: &Store,
    t: TrainId,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
) -> Result<(Planned, bool)> {
    match observe(store, t) {
        Ok(obs) => Ok((plan_observed(store, obs, sdd, target, now)?, false)),
        Err(Error::Input(msg)) => match crate::ops::archive::archived(store, t)? {
            Some(a) => {
                let obs =
                    Observed::from_records(t, &a.tags).ok_or_else(|| Error::Input(msg.clone()))?;
                let _ = store.ensure_commit(&obs.commit);
                Ok((plan_observed(store, obs, sdd, target, now)?, true))
            }
            None => Err(Error::Input(msg)),
        },
        Err(e) => Err(e),
    }
}

/// Plan an observed train, with the environment facts computed from the trains in the
/// cache (see [`plan_observed_in`]).
pub fn plan_observed(
    store: &Store,
    obs: Observed,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
) -> Result<Planned> {
    plan_observed_in(store, obs, sdd, target, now, None)
}

/// Plan an observed train. `envs`: the environment facts, when the caller computed them
/// for many trains at once; `None` computes them for this train when its graph has
/// environments.
pub fn plan_observed_in(
    store: &Store,
    mut obs: Observed,
    sdd_override: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
    envs: Option<&Environments>,
) -> Result<Planned> {
    let sdd = train_sdd(store, &obs, sdd_override)?;
    let target = match target {
        Some(x) => {
            sdd.check_target(x).map_err(Error::Input)?;
            x.to_string()
        }
        None => sdd.default_target().map_err(Error::Input)?.to_string(),
    };
    obs.retain_steps(|s| sdd.step(s).is_some());
    let environments = match envs {
        Some(e) if !sdd.environments().is_empty() => Some(e.clone()),
        Some(_) => None,
        None => super::environments::environments_for(store, obs.train, &sdd, sdd_override, now)?,
    };
    let mut ctx = PlanContext {
        now,
        conditions: BTreeMap::new(),
        environments,
    };
    let mut p = plan(&sdd, &target, &obs, &ctx);
    let evals: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Evaluate { step } => Some(step.clone()),
            _ => None,
        })
        .collect();
    if !evals.is_empty() {
        for step in evals {
            let globs = sdd
                .step(&step)
                .map(|s| s.if_changed.clone())
                .unwrap_or_default();
            let verdict = evaluate_condition(store, &obs, &sdd, &target, &globs, now)?;
            ctx.conditions.insert(step, verdict);
        }
        p = plan(&sdd, &target, &obs, &ctx);
    }
    Ok(Planned { obs, sdd, plan: p })
}

pub(crate) fn evaluate_condition(
    store: &Store,
    obs: &Observed,
    sdd: &Sdd,
    target: &str,
    globs: &[String],
    now: i64,
) -> Result<(bool, String)> {
    let list = globs
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some((prev, commit)) = last_reached(store, obs.train, sdd, target, now)? else {
        return Ok((
            true,
            format!("no earlier train reached `{target}`; runs by default"),
        ));
    };
    let changed = store.changed_paths(&commit, &obs.commit)?;
    match crate::model::changes::first_match(globs, &changed).map_err(Error::Input)? {
        Some(p) => Ok((
            true,
            format!("`{p}` changed since train {prev} ({})", short(&commit)),
        )),
        None => Ok((
            false,
            format!(
                "skipped: nothing matching {list} changed since train {prev} ({})",
                short(&commit)
            ),
        )),
    }
}

/// The newest other train (in the cache) that reached `target`, with its commit.
pub(crate) fn last_reached(
    store: &Store,
    me: TrainId,
    sdd: &Sdd,
    target: &str,
    now: i64,
) -> Result<Option<(TrainId, String)>> {
    // Only older trains count: a newer train in production must not change (or skip) the
    // gate of an older one. Make sure the cache knows them, even when this tick follows
    // one train only.
    let mut trains = cached_trains(store)?;
    if !trains.iter().any(|t| *t < me) {
        trains = discover(store, DEFAULT_HORIZON, false)?.trains;
    }
    for t in trains.into_iter().rev() {
        if t >= me {
            continue;
        }
        let Ok(mut obs) = observe(store, t) else {
            continue;
        };
        obs.retain_steps(|s| sdd.step(s).is_some());
        // Undecided conditions count as changed: such a train has not passed its gate.
        let conditions = crate::model::plan::all_changed(sdd, "");
        let p = plan(
            sdd,
            target,
            &obs,
            &PlanContext {
                now,
                conditions,
                environments: None,
            },
        );
        if p.state == TrainState::Succeeded {
            return Ok(Some((t, obs.commit)));
        }
    }
    Ok(None)
}
