//! People's decisions on a train: `unblock`, `retry`, `cancel`.

use crate::error::{Error, Result};
use crate::git::store::{Identity, PushOutcome, Store};
use crate::model::plan::{Action, StepKind, StepState, TriggerReason};
use crate::model::sdd::Sdd;
use crate::model::tag::{StepVerb, Tag, TrainId, Trigger, MAX_JOB};

#[allow(unused_imports)]
use super::*;

/// `konductor unblock`: attest a manual gate.
pub fn unblock(
    store: &Store,
    t: TrainId,
    step: &str,
    reason: Option<&str>,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<String> {
    if let Some(r) = reason {
        crate::model::train::check_one_line("`--reason`", r).map_err(Error::Input)?;
    }
    refresh_train(store, t)?;
    let Planned { obs, sdd, plan: p } = plan_train(store, t, sdd, None, now)?;
    let Some(s) = sdd.step(step) else {
        return Err(unknown_gate(&sdd, step));
    };
    if !s.manual {
        return Err(Error::input(format!(
            "step `{step}` is not a manual gate; only steps with `manual: true` can be unblocked"
        )));
    }
    if obs.unblocked.contains_key(step) {
        return Ok("already-unblocked".into());
    }
    if !s.approvers.is_empty()
        && !s
            .approvers
            .iter()
            .any(|a| crate::model::plan::same_identity(a, &by.to_string()))
    {
        return Err(Error::input(format!(
            "`{by}` may not unblock `{step}`; approvers: {}",
            s.approvers.join(", ")
        )));
    }
    if let Some(v) = p.step(step) {
        if v.state == StepState::Skipped {
            return Err(Error::input(format!(
                "step `{step}` of train {t} was skipped ({}); nothing to unblock",
                v.reason.clone().unwrap_or_default()
            )));
        }
        if !(v.state == StepState::Blocked && v.kind == StepKind::Manual) {
            let pending: Vec<String> = s
                .needs
                .iter()
                .filter(|d| p.step(d).is_some_and(|x| !x.state.is_done()))
                .map(|d| format!("`{d}`"))
                .collect();
            if pending.is_empty() {
                // Its dependencies are done but the gate is not waiting yet: its
                // `if_changed` condition decided to skip it and no tick recorded that yet.
                return Err(Error::input(format!(
                    "gate `{step}` of train {t} is not waiting for an unblock: {}; the next tick records it",
                    v.reason.as_deref().unwrap_or(v.state.as_str())
                )));
            }
            return Err(Error::input(format!(
                "gate `{step}` of train {t} is not waiting: its dependencies are not done yet ({})",
                pending.join(", ")
            )));
        }
    }
    if obs.cancelled.is_some() {
        return Err(Error::input(format!("train {t} is cancelled")));
    }
    let name = Tag::Step(t, step.to_string(), StepVerb::Unblocked).to_string();
    // Konductor's fields come first; the reason is one line and comes last.
    let msg = format!(
        "unblock `{step}`\n\nby: {by}\nreason: {}\n",
        reason.unwrap_or("(none given)")
    );
    let oid = store.make_tag(&name, &obs.commit, &msg, by, now)?;
    Ok(match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "unblocked".into(),
        PushOutcome::AlreadyExists(_) => "already-unblocked".into(),
    })
}

/// `konductor retry`: trigger the next attempt of a failed step.
pub fn retry(
    store: &Store,
    t: TrainId,
    step: &str,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<(String, String)> {
    refresh_train(store, t)?;
    let planned = match plan_train(store, t, sdd, None, now) {
        Err(Error::Input(m)) if m.contains("does not exist") => {
            if crate::ops::archive::archived(store, t)?.is_some() {
                return Err(Error::input(format!(
                    "train {t} is archived (collected by `konductor gc`); an archived train cannot be retried: start a new train"
                )));
            }
            return Err(Error::Input(m));
        }
        other => other?,
    };
    let Planned { obs, sdd, plan: p } = planned;
    if sdd.step(step).is_none() {
        return Err(unknown_step(&sdd, step));
    }
    if obs.cancelled.is_some() {
        return Err(Error::input(format!(
            "train {t} is cancelled; nothing can be retried"
        )));
    }
    let v = p.step(step).ok_or_else(|| {
        Error::input(format!(
            "step `{step}` is not needed by the target `{}`",
            p.target
        ))
    })?;
    let latest = obs
        .attempts
        .get(step)
        .and_then(|a| a.keys().next_back().copied())
        .unwrap_or(0);
    // A name squatted by an ignored tag is skipped, as the planner does.
    let next = crate::model::plan::next_job(&obs, step).ok_or_else(|| {
        Error::input(format!(
            "step `{step}` of train {t} has no job id left: a tag of it uses {MAX_JOB}, the largest the tag protocol allows"
        ))
    })?;
    // A retry the tick is already making counts: same tag name, one attempt.
    let auto = p
        .actions
        .iter()
        .any(|a| matches!(a, Action::Trigger { step: s, .. } if s == step));
    if v.state == StepState::Superseded {
        let why = match v.reason.as_deref() {
            Some(r) if r.starts_with("superseded") => r.to_string(),
            Some(r) => format!("superseded ({r})"),
            None => "superseded".to_string(),
        };
        return Err(Error::input(format!(
            "step `{step}` of train {t} cannot be retried: it is {why}, and deploys only move forward; a superseded step never runs (open a hotfix or a newer train instead)"
        )));
    }
    if v.state != StepState::Failure && !auto {
        return Err(Error::input(format!(
            "step `{step}` of train {t} is `{}`, not failed; only a failed step can be retried",
            v.state.as_str()
        )));
    }
    // A deploy step claims its environment again, as a tick would: only while this train
    // is still the newest there, and never while another deploy is in flight.
    if let Some(env) = sdd
        .step(step)
        .and_then(|s| s.environment.clone())
        .filter(|_| !auto)
    {
        let envs =
            super::environments::environments_for(store, t, &sdd, None, now)?.unwrap_or_default();
        let facts = envs.get(&env).cloned().unwrap_or_default();
        if let Some(h) = facts.high_water.filter(|h| *h > t) {
            return Err(Error::input(format!(
                "step `{step}` of train {t} cannot be retried: train {h} has deployed to `{env}` since, and deploys only move forward"
            )));
        }
        if let Some(d) = facts.deploying.filter(|d| *d != t) {
            return Err(Error::input(format!(
                "step `{step}` of train {t} cannot be retried now: {d} is deploying to `{env}`; retry when it has finished"
            )));
        }
        let windows = sdd.step(step).map(|s| s.freeze.clone()).unwrap_or_default();
        if let Some((why, _)) = crate::model::freeze::hold(&env, &facts.controls, &windows, now) {
            return Err(Error::input(format!(
                "step `{step}` of train {t} cannot be retried now: {why}"
            )));
        }
        let claim = Action::Claim {
            step: step.into(),
            environment: env.clone(),
            turn: facts.next_turn.max(1),
        };
        let cname = claim.tag_name(t).unwrap_or_default();
        let oid = store.make_tag(
            &cname,
            &obs.commit,
            &format!("{}\nby: {by}\n", claim.message_for(t)),
            by,
            now,
        )?;
        if let PushOutcome::AlreadyExists(_) = store.push_tag_create(&cname, &oid)? {
            return Err(Error::Conflict(format!(
                "another tick claimed `{env}` first (`{cname}`); nothing was retried, see `konductor status`"
            )));
        }
    }
    let tr = Trigger::new(t, step, next);
    let name = tr.tag().to_string();
    let a = Action::Trigger {
        step: step.into(),
        job: next,
        reason: TriggerReason::Manual { after: latest },
    };
    let oid = store.make_tag(
        &name,
        &obs.commit,
        &format!("{}\nby: {by}\n", a.message()),
        by,
        now,
    )?;
    let outcome = match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "created",
        PushOutcome::AlreadyExists(_) => "already-exists",
    };
    if outcome == "created" {
        survives_gc(store, t, &name, &oid)?;
    }
    Ok((name, outcome.into()))
}

/// How long a retry waits for a concurrent `gc` to give a collected train its train tag
/// back, in checks half a second apart.
pub const GC_RESTORE_CHECKS: u32 = 10;

/// A retry's trigger made a failed (finished) train live again. `konductor gc` may have
/// judged the train finished just before: it re-checks for new tags before and right after
/// deleting train tags, and restores a train tag when it finds one (see `gc.rs`). If the
/// train tag is gone and does not come back, gc won: withdraw the trigger (compare-and-
/// swap), so that no job runs for a train that no longer exists, and tell the user.
pub(crate) fn survives_gc(
    store: &Store,
    t: TrainId,
    trigger: &str,
    trigger_oid: &str,
) -> Result<()> {
    let train_tag = format!("refs/tags/{}", Tag::Train(t));
    for i in 0..GC_RESTORE_CHECKS {
        if store.ls_remote()?.iter().any(|r| r.name == train_tag) {
            return Ok(());
        }
        if i + 1 < GC_RESTORE_CHECKS {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    let refname = format!("refs/tags/{trigger}");
    let changed = store.push_delete(&[crate::git::wire::Delete {
        refname: refname.clone(),
        old: trigger_oid.to_string(),
    }])?;
    Err(Error::Conflict(format!(
        "train {t} was archived by a concurrent `konductor gc` while this retry was made; {}; nothing was retried (`konductor status --train {t}` reads the archive)",
        if changed.is_empty() {
            format!("the trigger `{trigger}` was withdrawn")
        } else {
            format!("the trigger `{trigger}` changed meanwhile and was left alone")
        }
    )))
}

/// `konductor cancel`.
pub fn cancel(
    store: &Store,
    t: TrainId,
    reason: Option<&str>,
    by: &Identity,
    now: i64,
) -> Result<String> {
    if let Some(r) = reason {
        crate::model::train::check_one_line("`--reason`", r).map_err(Error::Input)?;
    }
    refresh_train(store, t)?;
    let obs = observe(store, t)?;
    if obs.cancelled.is_some() {
        return Ok("already-cancelled".into());
    }
    let name = Tag::Cancelled(t).to_string();
    let msg = format!(
        "cancel train {t}\n\nby: {by}\nreason: {}\n",
        reason.unwrap_or("(none given)")
    );
    let oid = store.make_tag(&name, &obs.commit, &msg, by, now)?;
    Ok(match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "cancelled".into(),
        PushOutcome::AlreadyExists(_) => "already-cancelled".into(),
    })
}

pub(crate) fn unknown_step(sdd: &Sdd, step: &str) -> Error {
    let hint = crate::model::sdd::nearest(step, sdd.steps().iter().map(|s| s.name.as_str()))
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    Error::input(format!("unknown step `{step}` in {}{hint}", sdd.source))
}

/// An unknown step given to `unblock`: the hint names the manual gate meant (the nearest
/// name, or the one gate whose name contains what was typed), else lists the gates.
pub(crate) fn unknown_gate(sdd: &Sdd, step: &str) -> Error {
    let gates: Vec<&str> = sdd
        .steps()
        .iter()
        .filter(|s| s.manual)
        .map(|s| s.name.as_str())
        .collect();
    let containing: Vec<&str> = gates
        .iter()
        .copied()
        .filter(|g| !step.is_empty() && g.contains(step))
        .collect();
    let meant = crate::model::sdd::nearest(step, gates.iter().copied())
        .or_else(|| (containing.len() == 1).then(|| containing[0]));
    let hint = match meant {
        Some(g) => format!("; did you mean `{g}`?"),
        None if gates.is_empty() => "; it has no manual gate".to_string(),
        None => format!(
            "; its manual gate{}: {}",
            if gates.len() == 1 { "" } else { "s" },
            gates
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Error::input(format!("unknown step `{step}` in {}{hint}", sdd.source))
}

/// A report on a trigger tag that does not exist, with a hint: the trigger meant (the
/// step's newest, or the nearest step of the train's graph), or that the step was not
/// triggered yet. Reads the train (its tags and graph) only on this error path.
pub(crate) fn missing_trigger(store: &Store, trig: &Trigger) -> Error {
    let name = trig.tag().to_string();
    let msg = format!(
        "triggering tag `{name}` does not exist on `{}`",
        store.remote().url
    );
    let t = trig.train;
    let obs = refresh_train(store, t).and_then(|()| observe(store, t));
    let Ok(obs) = obs else {
        return Error::input(msg);
    };
    let graph = train_sdd(store, &obs, None).ok();
    let newest = |step: &str| {
        obs.attempts
            .get(step)
            .and_then(|a| a.iter().rev().find(|(_, x)| x.triggered.is_some()))
            .map(|(job, _)| Trigger::new(t, step, *job).tag().to_string())
    };
    let in_graph = graph.as_ref().is_none_or(|g| g.step(&trig.step).is_some());
    let hint = if in_graph {
        match newest(&trig.step) {
            Some(tag) => format!("; did you mean `{tag}`?"),
            None if graph.is_some() => format!(
                "; step `{}` has not been triggered on train {t} yet",
                trig.step
            ),
            None => String::new(),
        }
    } else {
        let g = graph.as_ref().expect("a graph when the step is not in it");
        let near =
            crate::model::sdd::nearest(&trig.step, g.steps().iter().map(|s| s.name.as_str()));
        let what = format!("`{}` is not a step of train {t}'s graph", trig.step);
        match near {
            Some(n) => match newest(n) {
                Some(tag) => format!("; {what}; did you mean `{tag}`?"),
                None => format!("; {what}; did you mean step `{n}` (not triggered yet)?"),
            },
            None => format!("; {what}"),
        }
    };
    Error::input(format!("{msg}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblock_of_an_unknown_step_names_the_gate_meant() {
        let sdd = Sdd::parse(
            "sdd.yaml",
            "unit-tests: []\nrequire-manual-unblock-before-prod-deploy: {needs: [unit-tests], manual: true}\n",
        )
        .unwrap();
        let hint = |step: &str| unknown_gate(&sdd, step).to_string();
        // A typo, and the beginning of a long gate name (too far for an edit distance).
        for typed in [
            "require-manual-unblock-before-prod-deploi",
            "require-manual-unblock",
        ] {
            assert_eq!(
                hint(typed),
                format!("unknown step `{typed}` in sdd.yaml; did you mean `require-manual-unblock-before-prod-deploy`?")
            );
        }
        // Near a job, not a gate: the gates are listed rather than a step that can't be
        // unblocked.
        assert_eq!(
            hint("unit-test"),
            "unknown step `unit-test` in sdd.yaml; its manual gate: `require-manual-unblock-before-prod-deploy`"
        );
        let none = Sdd::parse("sdd.yaml", "a: []\n").unwrap();
        assert_eq!(
            unknown_gate(&none, "b").to_string(),
            "unknown step `b` in sdd.yaml; it has no manual gate"
        );
    }
}
