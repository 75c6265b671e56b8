//! Local dry-run: run the planner against instant, in-memory jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

#[cfg(test)]
use crate::model::plan::Plan;
use crate::model::plan::{plan, plan_step, Action, PlanContext, StepPlan, StepView, TrainState};
use crate::model::sdd::{nearest, Sdd};
use crate::model::tag::{JobState, TrainId};
use crate::model::train::{Attempt, Event, Observed};

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

/// What a simulation starts from: how it records an event, a train that was just opened,
/// and every `if_changed` condition counted as changed (the safe default).
#[allow(clippy::type_complexity)]
fn start(
    sdd: &Sdd,
) -> (
    fn(String, i64) -> Event,
    Observed,
    BTreeMap<String, (bool, String)>,
) {
    fn ev(tag: String, at: i64) -> Event {
        Event {
            by: "simulate".into(),
            at,
            message: String::new(),
            tag,
            signer: None,
        }
    }
    let train = TrainId::new(1, 0);
    let obs = Observed::opened(train, "0".repeat(40), ev(format!("release={train}"), 0));
    let conditions = crate::model::plan::all_changed(sdd, "simulated as changed");
    (ev, obs, conditions)
}

/// Run the train with instant jobs until nothing moves.
///
/// Each tick is what [`plan`] would say for the train's tags so far, but computed
/// incrementally: only the steps whose tags changed, and the dependents whose inputs
/// changed in turn, are planned again (by the planner's own per-step function). A chain
/// of n steps takes n ticks, so planning the whole train on every tick was quadratic: 50 s
/// for 5,000 steps. The final state and step views come from one full [`plan`].
pub fn simulate(sdd: &Sdd, opts: &SimOptions) -> Result<Simulation, String> {
    check_options(sdd, opts)?;
    let (ev, mut obs, conditions) = start(sdd);
    let target = opts.target.as_str();
    let closure = sdd.closure(target);
    let pos: HashMap<&str, usize> = closure
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = closure
        .iter()
        .map(|s| s.needs.iter().map(|d| pos[d.as_str()]).collect())
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); closure.len()];
    for (i, ds) in needs.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut planned: Vec<Option<StepPlan>> = vec![None; closure.len()];
    // Steps to plan again, in topological order: a step's dependencies are planned first.
    let mut dirty: BTreeSet<usize> = (0..closure.len()).collect();
    // Steps with actions, in graph order (the order `plan` lists them).
    let mut acting: BTreeSet<usize> = BTreeSet::new();
    let mut ticks = Vec::new();
    let limit = sdd.steps().len() * 30 + 10;
    loop {
        let now = i64::try_from(ticks.len())
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let ctx = PlanContext {
            now,
            conditions: conditions.clone(),
            environments: None,
        };
        let mut waiting = Vec::new();
        while let Some(i) = dirty.pop_first() {
            let deps: Vec<(&StepView, Option<&String>)> = needs[i]
                .iter()
                .map(|&d| {
                    let p = planned[d].as_ref().expect("dependencies are planned first");
                    (&p.view, p.failed_upstream.as_ref())
                })
                .collect();
            let sp = plan_step(closure[i], target, &deps, &obs, &ctx, &[]);
            let changed = planned[i]
                .as_ref()
                .is_none_or(|old| old.view != sp.view || old.failed_upstream != sp.failed_upstream);
            if sp.actions.is_empty() {
                acting.remove(&i);
            } else {
                acting.insert(i);
            }
            if sp
                .view
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("waiting for manual unblock"))
                && opts.unblock.contains(&sp.view.name)
            {
                waiting.push(i);
            }
            planned[i] = Some(sp);
            if changed {
                dirty.extend(dependents[i].iter().copied());
            }
        }
        let mut t = SimTick {
            tick: ticks.len() + 1,
            triggered: vec![],
            failed: vec![],
            unblocked: vec![],
        };
        for &i in &acting {
            let actions = planned[i].as_ref().map_or(&[][..], |p| &p.actions[..]);
            for a in actions {
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
                    dirty.insert(i);
                }
            }
        }
        for i in waiting {
            let name = closure[i].name.clone();
            obs.unblocked.insert(name.clone(), ev(name.clone(), now));
            t.unblocked.push(name);
            dirty.insert(i);
        }
        if t.triggered.is_empty() && t.unblocked.is_empty() || ticks.len() > limit {
            let p = plan(sdd, target, &obs, &ctx);
            return Ok(Simulation {
                target: opts.target.clone(),
                ticks,
                state: p.state,
                steps: p.steps,
                critical_path: sdd.critical_path(target),
                depth: sdd.depth(target),
            });
        }
        ticks.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The simulation as it was: the whole planner on every tick. Quadratic, but plainly
    /// what `tick` would do; the incremental one must agree with it tick for tick.
    fn by_full_plans(sdd: &Sdd, opts: &SimOptions) -> (Vec<SimTick>, Plan) {
        let (ev, mut obs, conditions) = start(sdd);
        let mut ticks = Vec::new();
        let limit = sdd.steps().len() * 30 + 10;
        loop {
            let now = ticks.len() as i64 + 1;
            let ctx = PlanContext {
                now,
                conditions: conditions.clone(),
                environments: None,
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
                        t.failed.push(name.clone());
                        JobState::Failure
                    } else {
                        JobState::Success
                    };
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
                return (ticks, p);
            }
            ticks.push(t);
        }
    }

    fn arb_case() -> impl Strategy<Value = (String, Vec<bool>, Vec<bool>)> {
        (2usize..14).prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n),
                proptest::collection::vec(0u8..8, n),
                proptest::collection::vec(0u32..3, n),
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(any::<bool>(), n),
            )
                .prop_map(move |(deps, kinds, retries, fail, unblock)| {
                    let mut s = String::new();
                    for i in 0..n {
                        let needs: Vec<String> = (0..i)
                            .filter(|&j| deps[i][j] && i - j < 4)
                            .map(|j| format!("s{j}"))
                            .collect();
                        let extra = match kinds[i] {
                            0 => ", manual: true".to_string(),
                            1 => ", virtual: true".to_string(),
                            2 => ", if_changed: [\"x/**\"]".to_string(),
                            _ => format!(", retries: {}", retries[i]),
                        };
                        s.push_str(&format!("s{i}: {{needs: [{}]{extra}}}\n", needs.join(", ")));
                    }
                    let all: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
                    s.push_str(&format!(
                        "t: {{needs: [{}], virtual: true}}\n",
                        all.join(", ")
                    ));
                    (s, fail, unblock)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn incremental_simulation_agrees_with_full_plans_tick_for_tick(
            (text, fail, unblock) in arb_case()
        ) {
            let sdd = Sdd::parse("t.yaml", &text).unwrap();
            let pick = |flags: &[bool], ok: &dyn Fn(&crate::model::sdd::Step) -> bool| -> BTreeSet<String> {
                sdd.steps()
                    .iter()
                    .zip(flags)
                    .filter(|(s, f)| **f && ok(s))
                    .map(|(s, _)| s.name.clone())
                    .collect()
            };
            let opts = SimOptions {
                target: "t".into(),
                fail: pick(&fail, &|s| sdd.runs(&s.name, "t")),
                unblock: pick(&unblock, &|s| s.manual),
            };
            let sim = simulate(&sdd, &opts).unwrap();
            let (ticks, p) = by_full_plans(&sdd, &opts);
            prop_assert_eq!(
                serde_json::to_value(&sim.ticks).unwrap(),
                serde_json::to_value(&ticks).unwrap()
            );
            prop_assert_eq!(sim.state, p.state);
            prop_assert_eq!(sim.steps, p.steps);
        }
    }

    #[test]
    fn a_long_chain_simulates_in_linear_time() {
        // 5,000 steps took 50 s when every tick planned the whole train.
        let mut text = String::from("s0: []\n");
        for i in 1..5_000 {
            text.push_str(&format!("s{i}: [s{}]\n", i - 1));
        }
        let sdd = Sdd::parse("t.yaml", &text).unwrap();
        let opts = SimOptions {
            target: "s4999".into(),
            ..Default::default()
        };
        let t0 = std::time::Instant::now();
        let sim = simulate(&sdd, &opts).unwrap();
        let took = t0.elapsed();
        assert_eq!(sim.ticks.len(), 4_999);
        assert_eq!(sim.state, TrainState::Succeeded);
        assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    }
}
