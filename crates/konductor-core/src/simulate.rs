//! Local dry-run: run the planner against instant, in-memory jobs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::plan::{plan, Action, PlanContext, StepView, TrainState};
use crate::sdd::{nearest, Sdd};
use crate::tag::{JobState, TrainId};
use crate::train::{Attempt, Event, Observed};

/// What to simulate.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// The target step.
    pub target: String,
    /// Steps whose jobs fail (every attempt).
    pub fail: BTreeSet<String>,
    /// Manual gates to unblock as soon as they are reached.
    pub unblock: BTreeSet<String>,
}

/// One simulated tick.
#[derive(Debug, Clone, Serialize)]
pub struct SimTick {
    /// 1-based tick number.
    pub tick: usize,
    /// Steps triggered (with attempt), e.g. `unit-tests.1`.
    pub triggered: Vec<String>,
    /// Of those, the ones that failed.
    pub failed: Vec<String>,
    /// Manual gates unblocked in this tick.
    pub unblocked: Vec<String>,
}

/// The result of a simulation.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    /// The target.
    pub target: String,
    /// Ticks that did something.
    pub ticks: Vec<SimTick>,
    /// Final train state.
    pub state: TrainState,
    /// Final step states.
    pub steps: Vec<StepView>,
    /// The longest chain of jobs to the target.
    pub critical_path: Vec<String>,
    /// Runnable steps on the critical path.
    pub depth: usize,
}

/// Validate the options against the graph.
pub fn check_options(sdd: &Sdd, opts: &SimOptions) -> Result<(), String> {
    sdd.check_target(&opts.target)?;
    for (flag, set) in [("--fail", &opts.fail), ("--unblock", &opts.unblock)] {
        for s in set {
            let Some(step) = sdd.step(s) else {
                let hint = nearest(s, sdd.steps().iter().map(|s| s.name.as_str()))
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                return Err(format!("unknown step `{s}` given to `{flag}`{hint}"));
            };
            if flag == "--fail" && !sdd.runs(s, &opts.target) {
                return Err(format!("`--fail {s}`: step `{s}` is not a job (virtual, manual or the target), so it cannot fail"));
            }
            if flag == "--unblock" && !step.manual {
                return Err(format!("`--unblock {s}`: step `{s}` is not a manual gate"));
            }
        }
    }
    Ok(())
}

/// Run the train with instant jobs until nothing moves.
pub fn simulate(sdd: &Sdd, opts: &SimOptions) -> Result<Simulation, String> {
    check_options(sdd, opts)?;
    let train = TrainId::new(1, 0);
    let ev = |tag: String, at: i64| Event {
        by: "simulate".into(),
        at,
        message: String::new(),
        tag,
        signer: None,
    };
    let mut obs = Observed {
        train,
        commit: "0".repeat(40),
        opened: ev(format!("release={train}"), 0),
        attempts: BTreeMap::new(),
        taken: BTreeMap::new(),
        unblocked: BTreeMap::new(),
        skipped: BTreeMap::new(),
        cancelled: None,
        warnings: vec![],
    };
    // Every `if_changed` condition counts as changed: the safe default.
    let conditions = sdd
        .steps()
        .iter()
        .filter(|s| !s.if_changed.is_empty())
        .map(|s| (s.name.clone(), (true, "simulated as changed".to_string())))
        .collect();
    let mut ticks = Vec::new();
    let limit = sdd.steps().len() * 30 + 10;
    loop {
        let now = ticks.len() as i64 + 1;
        let ctx = PlanContext {
            now,
            conditions: BTreeMap::clone(&conditions),
        };
        let p = plan(sdd, &opts.target, &obs, &ctx);
        let mut t = SimTick {
            tick: ticks.len() + 1,
            triggered: vec![],
            failed: vec![],
            unblocked: vec![],
        };
        for a in &p.actions {
            if let Action::Trigger { step, job, .. } = a {
                let name = format!("{step}.{job}");
                let mut att = Attempt {
                    triggered: Some(ev(name.clone(), now)),
                    ..Default::default()
                };
                att.states.insert(JobState::Started, ev(name.clone(), now));
                let end = if opts.fail.contains(step) {
                    JobState::Failure
                } else {
                    JobState::Success
                };
                if end == JobState::Failure {
                    t.failed.push(name.clone());
                }
                att.states.insert(end, ev(name.clone(), now));
                obs.attempts
                    .entry(step.clone())
                    .or_default()
                    .insert(*job, att);
                t.triggered.push(name);
            }
        }
        for s in &p.steps {
            if s.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("waiting for manual unblock"))
                && opts.unblock.contains(&s.name)
            {
                obs.unblocked
                    .insert(s.name.clone(), ev(s.name.clone(), now));
                t.unblocked.push(s.name.clone());
            }
        }
        if t.triggered.is_empty() && t.unblocked.is_empty() || ticks.len() > limit {
            return Ok(Simulation {
                target: opts.target.clone(),
                ticks,
                state: p.state,
                steps: p.steps,
                critical_path: sdd.critical_path(&opts.target),
                depth: sdd.depth(&opts.target),
            });
        }
        ticks.push(t);
    }
}
