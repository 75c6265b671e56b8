//! Table tests and property tests of the planner.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::model::sdd::Sdd;
use crate::model::tag::{JobState, TrainId};
use crate::model::train::{Attempt, Event, Observed};

const SEED: &str = include_str!("../../../../../sdd.yaml");

fn ev(at: i64) -> Event {
    Event {
        by: "t <t@x>".into(),
        at,
        message: String::new(),
        tag: String::new(),
        signer: None,
    }
}

fn empty() -> Observed {
    Observed::opened(TrainId::new(1, 0), "c".repeat(40), ev(0))
}

/// Record an attempt: triggered at `at`, then the given states at `at`.
fn att(obs: &mut Observed, step: &str, job: u32, at: i64, states: &[JobState]) {
    let mut a = Attempt {
        triggered: Some(ev(at)),
        ..Default::default()
    };
    for s in states {
        a.states.insert(*s, ev(at));
    }
    obs.attempts.entry(step.into()).or_default().insert(job, a);
}

fn ctx(now: i64) -> PlanContext {
    PlanContext {
        now,
        conditions: BTreeMap::new(),
        environments: None,
    }
}

fn triggers(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Trigger { step, job, .. } => Some(format!("{step}.{job}")),
            _ => None,
        })
        .collect()
}

fn sdd(text: &str) -> Sdd {
    Sdd::parse("t.yaml", text).unwrap()
}

const OK: &[JobState] = &[JobState::Started, JobState::Success];
const FAIL: &[JobState] = &[JobState::Started, JobState::Failure];

#[test]
fn leaves_first_then_dependents() {
    let g = sdd("a: []\nb: []\nc: [a, b]\nt: {needs: [c], virtual: true}\n");
    let mut o = empty();
    assert_eq!(triggers(&plan(&g, "t", &o, &ctx(1))), ["a.1", "b.1"]);
    att(&mut o, "a", 1, 1, OK);
    att(&mut o, "b", 1, 1, &[JobState::Started]);
    let p = plan(&g, "t", &o, &ctx(2));
    assert!(triggers(&p).is_empty(), "c must wait for b");
    assert_eq!(p.state, TrainState::Running);
    att(&mut o, "b", 1, 1, OK);
    assert_eq!(triggers(&plan(&g, "t", &o, &ctx(3))), ["c.1"]);
    att(&mut o, "c", 1, 3, OK);
    let p = plan(&g, "t", &o, &ctx(4));
    assert!(p.actions.is_empty());
    assert_eq!(p.state, TrainState::Succeeded);
    assert_eq!(p.step("t").unwrap().state, StepState::Success);
}

#[test]
fn target_and_virtual_steps_are_never_triggered() {
    let g = sdd("a: []\nv: {needs: [a], virtual: true}\nb: [v]\nt: [b]\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, OK);
    assert_eq!(triggers(&plan(&g, "t", &o, &ctx(2))), ["b.1"]);
    att(&mut o, "b", 1, 2, OK);
    // `t` is a plain step, but as the target it is never triggered.
    let p = plan(&g, "t", &o, &ctx(3));
    assert!(triggers(&p).is_empty());
    assert_eq!(p.state, TrainState::Succeeded);
    // Aiming at `v` only needs `a`.
    let p = plan(&g, "v", &empty(), &ctx(1));
    assert_eq!(triggers(&p), ["a.1"]);
    assert_eq!(p.steps.len(), 2);
}

#[test]
fn failure_blocks_exactly_its_downstream() {
    let g = sdd("a: []\nb: []\nc: [a]\nd: [b]\nt: {needs: [c, d], virtual: true}\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, FAIL);
    att(&mut o, "b", 1, 1, OK);
    let p = plan(&g, "t", &o, &ctx(2));
    assert_eq!(triggers(&p), ["d.1"]);
    assert_eq!(p.step("c").unwrap().state, StepState::Blocked);
    assert_eq!(
        p.step("c").unwrap().reason.as_deref(),
        Some("upstream `a` failed")
    );
    assert_eq!(p.step("t").unwrap().state, StepState::Blocked);
    assert_eq!(p.state, TrainState::Running);
    att(&mut o, "d", 1, 2, OK);
    assert_eq!(plan(&g, "t", &o, &ctx(3)).state, TrainState::Failed);
}

#[test]
fn retries_then_gives_up() {
    let g = sdd("a: {needs: [], retries: 2}\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, FAIL);
    assert_eq!(
        triggers(&plan(&g, "a2", &o, &ctx(2)).clone()).len(),
        0,
        "unknown target yields nothing"
    );
    let g = sdd("a: {needs: [], retries: 2}\nt: {needs: [a], virtual: true}\n");
    assert_eq!(triggers(&plan(&g, "t", &o, &ctx(2))), ["a.2"]);
    att(&mut o, "a", 2, 2, FAIL);
    assert_eq!(triggers(&plan(&g, "t", &o, &ctx(3))), ["a.3"]);
    att(&mut o, "a", 3, 3, FAIL);
    let p = plan(&g, "t", &o, &ctx(4));
    assert!(triggers(&p).is_empty());
    assert_eq!(p.state, TrainState::Failed);
    assert_eq!(
        p.step("a").unwrap().reason.as_deref(),
        Some("attempt 3 failed; no retries left")
    );
}

#[test]
fn a_later_success_wins_and_the_train_flows_on() {
    let g = sdd("a: []\nb: [a]\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, FAIL);
    att(&mut o, "a", 2, 2, OK); // manual retry
    let p = plan(&g, "b", &o, &ctx(3));
    assert_eq!(p.step("a").unwrap().attempt, 2);
    assert_eq!(p.state, TrainState::Succeeded);
}

#[test]
fn timeouts_are_judged_from_tag_times() {
    let g = sdd("a: {needs: [], timeout: 30m}\nt: {needs: [a], virtual: true}\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1000, &[JobState::Started]);
    assert!(plan(&g, "t", &o, &ctx(1000 + 1800)).actions.is_empty());
    let p = plan(&g, "t", &o, &ctx(1000 + 1801));
    assert!(matches!(&p.actions[..], [Action::Timeout { step, job: 1, .. }] if step == "a"));
    att(
        &mut o,
        "a",
        1,
        1000,
        &[JobState::Started, JobState::Timeout, JobState::Success],
    );
    let p = plan(&g, "t", &o, &ctx(5000));
    assert_eq!(
        p.step("a").unwrap().state,
        StepState::Failure,
        "a late success after a timeout moves nothing"
    );
    assert_eq!(p.state, TrainState::Failed);
}

/// Add re-run `k` of an attempt with the given states, all at time `at`.
fn rerun(obs: &mut Observed, step: &str, job: u32, k: u32, at: i64, states: &[JobState]) {
    let a = obs.attempts.get_mut(step).unwrap().get_mut(&job).unwrap();
    let run = a.reruns.entry(k).or_default();
    for s in states {
        run.insert(*s, ev(at));
    }
}

#[test]
fn a_ci_rerun_that_succeeds_counts_and_the_train_flows_on() {
    use JobState::*;
    let g = sdd("a: []\nb: [a]\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, &[Started, Failure]);
    assert_eq!(plan(&g, "b", &o, &ctx(2)).state, TrainState::Failed);
    rerun(&mut o, "a", 1, 1, 3, &[Started]);
    let p = plan(&g, "b", &o, &ctx(4));
    assert_eq!(p.step("a").unwrap().state, StepState::Started);
    assert!(p.actions.is_empty(), "a running re-run triggers nothing");
    rerun(&mut o, "a", 1, 1, 5, &[Started, Success]);
    let p = plan(&g, "b", &o, &ctx(6));
    assert_eq!(p.step("a").unwrap().state, StepState::Success);
    assert_eq!(p.step("a").unwrap().attempt, 1);
    assert_eq!(p.state, TrainState::Succeeded);
}

#[test]
fn the_newest_rerun_counts_by_number_not_by_time() {
    use JobState::*;
    let g = sdd("a: []\nb: [a]\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, &[Started, Success]);
    // Re-run 2 failed; re-run 1's success carries a later time (a skewed clock).
    rerun(&mut o, "a", 1, 1, 900, &[Started, Success]);
    rerun(&mut o, "a", 1, 2, 50, &[Started, Failure]);
    let p = plan(&g, "b", &o, &ctx(1000));
    assert_eq!(p.step("a").unwrap().state, StepState::Failure);
    assert_eq!(p.state, TrainState::Failed);
    rerun(&mut o, "a", 1, 3, 60, &[Success]);
    assert_eq!(plan(&g, "b", &o, &ctx(1000)).state, TrainState::Succeeded);
}

#[test]
fn a_rerun_does_not_spend_a_retry_and_a_hung_rerun_times_out() {
    use JobState::*;
    let g = sdd("a: {needs: [], retries: 1, timeout: 10m}\nb: [a]\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, &[Started, Failure]);
    rerun(&mut o, "a", 1, 1, 100, &[Started]);
    assert!(plan(&g, "b", &o, &ctx(700)).actions.is_empty());
    let p = plan(&g, "b", &o, &ctx(701));
    assert!(
        matches!(&p.actions[..], [Action::Timeout { step, job: 1, rerun: 1, .. }] if step == "a"),
        "{:?}",
        p.actions
    );
    assert_eq!(
        p.actions[0].tag(o.train).unwrap().to_string(),
        "release=1.0=a.1=rerun.1=timeout"
    );
    rerun(&mut o, "a", 1, 1, 100, &[Timeout]);
    // Attempt 1 failed once (its newest run): the one retry is still there.
    assert_eq!(triggers(&plan(&g, "b", &o, &ctx(800))), ["a.2"]);
}

#[test]
fn lost_triggers_are_re_triggered_a_bounded_number_of_times() {
    let g = sdd("a: {needs: [], trigger_timeout: 10m}\nt: {needs: [a], virtual: true}\n");
    let mut o = empty();
    att(&mut o, "a", 1, 100, &[]);
    assert!(plan(&g, "t", &o, &ctx(700)).actions.is_empty());
    assert_eq!(triggers(&plan(&g, "t", &o, &ctx(701))), ["a.2"]);
    for j in 2..=4 {
        att(&mut o, "a", j, 100, &[]);
    }
    let p = plan(&g, "t", &o, &ctx(10_000));
    assert!(p.actions.is_empty(), "3 lost triggers: stop and say so");
    assert!(p
        .step("a")
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .contains("tag filter"));
}

/// The seed train with every step up to the production gate succeeded at time 1.
fn through_staging() -> Observed {
    let mut o = empty();
    for s in [
        "unit-tests",
        "lint",
        "build_serving_image",
        "build_worker_image",
        "deploy_serving_staging_k8s",
        "verify_serving_staging",
    ] {
        att(&mut o, s, 1, 1, OK);
    }
    o
}

#[test]
fn manual_gates_wait_and_unblock() {
    let g = sdd(SEED);
    let mut o = through_staging();
    let gate = "require-manual-unblock-before-prod-deploy";
    let mut c = ctx(2);
    let p = plan(&g, "complete-deploy", &o, &c);
    assert!(matches!(&p.actions[..], [Action::Evaluate { step }] if step == gate));
    c.conditions.insert(gate.into(), (true, "changed".into()));
    let p = plan(&g, "complete-deploy", &o, &c);
    assert!(p.actions.is_empty());
    assert_eq!(p.step(gate).unwrap().state, StepState::Blocked);
    assert_eq!(p.state, TrainState::Blocked);
    assert_eq!(
        p.step("complete-verification").unwrap().state,
        StepState::Success
    );
    o.unblocked.insert(gate.into(), ev(3));
    assert_eq!(
        triggers(&plan(&g, "complete-deploy", &o, &c)),
        ["deploy_serving_prod_k8s.1"]
    );
}

#[test]
fn unmet_conditions_skip_and_count_as_done() {
    let g = sdd(SEED);
    let mut o = through_staging();
    let gate = "require-manual-unblock-before-prod-deploy";
    let mut c = ctx(2);
    c.conditions
        .insert(gate.into(), (false, "skipped: no change".into()));
    let p = plan(&g, "complete-deploy", &o, &c);
    assert!(matches!(&p.actions[..], [Action::Skip { step, .. }] if step == gate));
    o.skipped.insert(gate.into(), ev(3));
    let p = plan(&g, "complete-deploy", &o, &ctx(4));
    assert_eq!(p.step(gate).unwrap().state, StepState::Skipped);
    assert_eq!(triggers(&p), ["deploy_serving_prod_k8s.1"]);
}

#[test]
fn cancel_stops_everything() {
    let g = sdd("a: []\nb: [a]\n");
    let mut o = empty();
    att(&mut o, "a", 1, 1, OK);
    o.cancelled = Some(ev(2));
    let p = plan(&g, "b", &o, &ctx(3));
    assert!(p.actions.is_empty());
    assert_eq!(p.state, TrainState::Cancelled);
}

#[test]
fn premature_tags_are_ignored_and_reported() {
    let g = sdd("a: []\nb: [a]\nt: {needs: [b], virtual: true}\n");
    let mut o = empty();
    att(&mut o, "b", 1, 1, OK); // spoofed: `a` never succeeded
    let p = plan(&g, "t", &o, &ctx(2));
    assert_eq!(p.step("b").unwrap().state, StepState::Pending);
    assert_eq!(p.state, TrainState::Running);
    assert_eq!(triggers(&p), ["a.1"]);
    assert!(
        p.warnings.iter().any(|w| w.contains("`b`")),
        "{:?}",
        p.warnings
    );
}

// ---- property tests ----

/// A random DAG: step i may depend on any j < i.
fn arb_graph() -> impl Strategy<Value = (String, usize)> {
    (2usize..12).prop_flat_map(|n| {
        let deps = proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), n);
        let retries = proptest::collection::vec(0u32..3, n);
        (Just(n), deps, retries).prop_map(|(n, deps, retries)| {
            let mut s = String::new();
            for i in 0..n {
                let needs: Vec<String> = (0..i)
                    .filter(|&j| deps[i][j] && (i - j) < 4)
                    .map(|j| format!("s{j}"))
                    .collect();
                s.push_str(&format!(
                    "s{i}: {{needs: [{}], retries: {}}}\n",
                    needs.join(", "),
                    retries[i]
                ));
            }
            let all: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
            s.push_str(&format!(
                "target: {{needs: [{}], virtual: true}}\n",
                all.join(", ")
            ));
            (s, n)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Run a train where each job's outcome is drawn at random, with several planners
    /// that see stale views, and check the invariants the protocol promises.
    #[test]
    fn invariants_hold_under_random_outcomes_and_stale_planners(
        (text, _n) in arb_graph(),
        outcomes in proptest::collection::vec(0u8..10, 200),
        stale in proptest::collection::vec(any::<bool>(), 200),
        cancel_at in proptest::option::of(0usize..15),
    ) {
        let g = sdd(&text);
        let mut o = empty();
        let mut views = vec![o.clone()];
        let mut created: BTreeSet<String> = BTreeSet::new();
        let mut k = 0;
        for round in 0..60 {
            if Some(round) == cancel_at {
                o.cancelled = Some(ev(round as i64));
            }
            // Two planners: one current, one maybe stale. Both act; tags are create-only.
            let stale_view = if stale[round % stale.len()] { views[views.len().saturating_sub(2)].clone() } else { o.clone() };
            for view in [o.clone(), stale_view] {
                let p = plan(&g, "target", &view, &ctx(round as i64));
                if view.cancelled.is_some() {
                    prop_assert!(p.actions.is_empty(), "nothing runs after cancel");
                }
                for a in &p.actions {
                    if let Action::Trigger { step, job, .. } = a {
                        // no step runs before all its needs are done (in the view it planned from)
                        for d in &g.step(step).unwrap().needs {
                            prop_assert!(p.step(d).unwrap().state.is_done(), "{step} triggered before {d}");
                        }
                        let name = format!("{step}.{job}");
                        if created.insert(name) {
                            // the CI runs it: random outcome
                            let r = outcomes[k % outcomes.len()];
                            k += 1;
                            let st: &[JobState] = if r < 3 { FAIL } else { OK };
                            att(&mut o, step, *job, round as i64, st);
                        }
                    }
                }
            }
            views.push(o.clone());
        }
        let p = plan(&g, "target", &o, &ctx(1000));
        for s in g.steps() {
            let n = o.attempts.get(&s.name).map_or(0, |a| a.len() as u32);
            // attempts never exceed retries + 1 by automation
            prop_assert!(n <= s.retries + 1, "{}: {n} attempts with retries {}", s.name, s.retries);
            // job ids are consecutive from 1: one tag name per (step, attempt)
            if let Some(a) = o.attempts.get(&s.name) {
                prop_assert_eq!(a.keys().copied().collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
            }
        }
        if o.cancelled.is_none() {
            // the train ends: succeeded or failed, never stuck running
            prop_assert!(matches!(p.state, TrainState::Succeeded | TrainState::Failed), "{:?}", p.state);
            if p.state == TrainState::Succeeded {
                prop_assert!(p.steps.iter().all(|s| s.state.is_done()));
            }
        } else {
            prop_assert_eq!(p.state, TrainState::Cancelled);
        }
    }

    /// Same observations, same plan: what makes racing ticks produce the same tag names.
    #[test]
    fn planning_is_deterministic((text, _n) in arb_graph(), done in proptest::collection::vec(any::<bool>(), 12)) {
        let g = sdd(&text);
        let mut o = empty();
        for (i, d) in done.iter().enumerate() {
            if *d && g.step(&format!("s{i}")).is_some() {
                att(&mut o, &format!("s{i}"), 1, 1, OK);
            }
        }
        let a = plan(&g, "target", &o, &ctx(5));
        let b = plan(&g, "target", &o, &ctx(5));
        prop_assert_eq!(a, b);
    }
}

// ---- numeric boundaries (issue 12) ----

#[test]
fn the_longest_timeout_neither_fires_at_once_nor_re_triggers_every_tick() {
    // `timeout: 9223372036854775808s` used to pass and wrap negative (`as i64`), so the
    // job timed out at once; a huge trigger timeout re-triggered every tick.
    let g = sdd("a: {timeout: 365d, trigger_timeout: 365d}\nt: {needs: [a], virtual: true}\n");
    let year = 365 * 86_400;
    let mut o = empty();
    att(&mut o, "a", 1, 1_000, &[]);
    for now in [1_001, 1_000 + year, crate::model::time::MAX_TIME, i64::MAX] {
        let now = crate::model::time::clamp(now);
        let p = plan(&g, "t", &o, &ctx(now));
        let expect = now - 1_000 > year;
        assert_eq!(!p.actions.is_empty(), expect, "now {now}: {:?}", p.actions);
    }
    let mut o = empty();
    att(&mut o, "a", 1, 1_000, &[JobState::Started]);
    assert!(plan(&g, "t", &o, &ctx(1_000 + year)).actions.is_empty());
    assert!(matches!(
        plan(&g, "t", &o, &ctx(1_001 + year)).actions[..],
        [Action::Timeout { .. }]
    ));
    // A tag time in the future is waited from, never wrapped past.
    let mut o = empty();
    att(
        &mut o,
        "a",
        1,
        crate::model::time::MAX_TIME,
        &[JobState::Started],
    );
    assert!(plan(&g, "t", &o, &ctx(0)).actions.is_empty());
}

#[test]
fn a_squatted_largest_job_id_fails_the_step_instead_of_wrapping() {
    use crate::model::tag::MAX_JOB;
    let g = sdd("a: {retries: 2}\nt: {needs: [a], virtual: true}\n");
    let mut o = empty();
    o.taken.insert("a".into(), MAX_JOB);
    let p = plan(&g, "t", &o, &ctx(1));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let a = p.step("a").unwrap();
    assert_eq!(a.state, StepState::Failure);
    assert!(
        a.reason.as_deref().unwrap().contains("no job id left"),
        "{a:?}"
    );
    // The same for a retry after a failure at the top id.
    let mut o = empty();
    att(&mut o, "a", MAX_JOB, 1, FAIL);
    let p = plan(&g, "t", &o, &ctx(2));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.step("a").unwrap().state, StepState::Failure);
    assert_eq!(p.state, TrainState::Failed);
    // One below the top still triggers, with the top id.
    let mut o = empty();
    o.taken.insert("a".into(), MAX_JOB - 1);
    assert_eq!(
        triggers(&plan(&g, "t", &o, &ctx(1))),
        [format!("a.{MAX_JOB}")]
    );
}

#[test]
fn premature_tag_warnings_are_capped_per_train() {
    let mut text = String::from("root: []\n");
    for i in 0..40 {
        text.push_str(&format!("s{i}: [root]\n"));
    }
    text.push_str(&format!(
        "t: {{needs: [{}], virtual: true}}\n",
        (0..40)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let g = sdd(&text);
    let mut o = empty();
    for i in 0..40 {
        att(&mut o, &format!("s{i}"), 1, 1, OK);
    }
    let p = plan(&g, "t", &o, &ctx(2));
    assert_eq!(
        p.warnings.len(),
        crate::model::train::SHOWN_PER_KIND + 1,
        "{:?}",
        p.warnings
    );
    assert!(p
        .warnings
        .last()
        .unwrap()
        .contains("… and the tags of 35 more steps"));
}
