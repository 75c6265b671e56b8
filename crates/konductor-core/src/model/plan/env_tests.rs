//! Environments in the planner: the rules as a table, and racing planners with stale
//! views against a create-only remote as a property.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::model::env::{combine, EnvFacts, EnvPhase, SeenClaim};
use crate::model::sdd::Sdd;
use crate::model::tag::{JobState, TrainId};
use crate::model::train::{Attempt, Event, Observed};

const GRAPH: &str = "build: []\n\
deploy_staging: {needs: [build], environment: staging}\n\
verify: [deploy_staging]\n\
done: {needs: [verify], virtual: true}\n";

fn t(n: u32, p: u32) -> TrainId {
    TrainId::new(n, p)
}

fn ev() -> Event {
    Event {
        by: "t <t@x>".into(),
        at: 100,
        message: "superseded: x".into(),
        tag: String::new(),
        signer: None,
    }
}

fn train(id: TrainId) -> Observed {
    Observed::opened(id, "c".repeat(40), ev())
}

fn run(obs: &mut Observed, step: &str, job: u32, states: &[JobState]) {
    let mut a = Attempt {
        triggered: Some(ev()),
        ..Default::default()
    };
    for s in states {
        a.states.insert(*s, ev());
    }
    obs.attempts.entry(step.into()).or_default().insert(job, a);
}

fn facts(holder: Option<TrainId>, hw: Option<TrainId>, deploying: Option<TrainId>) -> EnvFacts {
    EnvFacts {
        next_turn: 4,
        holder,
        deploying,
        high_water: hw,
        trains: BTreeMap::new(),
        controls: Default::default(),
    }
}

#[test]
fn forward_only_an_older_train_is_superseded_where_a_newer_one_deployed() {
    let mut f = facts(Some(t(2, 0)), Some(t(2, 0)), None);
    f.trains.insert(t(2, 0), EnvPhase::Deployed);
    assert_eq!(
        decide(t(1, 0), "staging", &f, &[]),
        EnvDecision::Supersede("superseded: 2.0 deployed to `staging`".into())
    );
    f.trains.insert(t(2, 0), EnvPhase::Deploying);
    assert_eq!(
        decide(t(1, 0), "staging", &f, &[]),
        EnvDecision::Supersede("superseded: 2.0 is deploying to `staging`".into())
    );
}

#[test]
fn one_at_a_time_a_ready_train_waits_and_says_for_whom() {
    let f = facts(Some(t(41, 0)), Some(t(41, 0)), Some(t(41, 0)));
    assert_eq!(
        decide(t(42, 0), "staging", &f, &[]),
        EnvDecision::Wait("waiting for staging: 41.0 is deploying".into())
    );
}

#[test]
fn newest_wins_an_older_ready_train_waits_for_the_newer_then_is_superseded() {
    let mut f = facts(Some(t(40, 0)), Some(t(40, 0)), None);
    f.trains.insert(t(41, 0), EnvPhase::Ready);
    f.trains.insert(t(42, 0), EnvPhase::Ready);
    assert_eq!(
        decide(t(41, 0), "staging", &f, &[]),
        EnvDecision::Wait("waiting for staging: 42.0 is newer and goes first".into())
    );
    assert_eq!(
        decide(t(42, 0), "staging", &f, &[]),
        EnvDecision::Go { turn: 4 }
    );
    // 42.0 claimed: 41.0 will never deploy here.
    let f = facts(Some(t(42, 0)), Some(t(42, 0)), Some(t(42, 0)));
    assert!(matches!(
        decide(t(41, 0), "staging", &f, &[]),
        EnvDecision::Supersede(_)
    ));
}

#[test]
fn a_train_that_claimed_and_stopped_before_its_trigger_triggers() {
    let f = facts(Some(t(5, 0)), Some(t(5, 0)), Some(t(5, 0)));
    assert_eq!(decide(t(5, 0), "staging", &f, &[]), EnvDecision::Holds);
}

#[test]
fn a_hotfix_passes_a_newer_train_that_is_only_on_staging() {
    // 41.0 in production, 42.0 on staging only: 41.1 goes through staging and production.
    let staging = facts(Some(t(42, 0)), Some(t(42, 0)), None);
    let prod = facts(Some(t(41, 0)), Some(t(41, 0)), None);
    assert_eq!(
        decide(t(41, 1), "staging", &staging, &[("production", &prod)]),
        EnvDecision::Go { turn: 4 }
    );
    assert_eq!(
        decide(t(41, 1), "production", &prod, &[]),
        EnvDecision::Go { turn: 4 }
    );
    // Once 42.0 is in production, 41.1 is superseded everywhere.
    let prod = facts(Some(t(42, 0)), Some(t(42, 0)), None);
    assert!(matches!(
        decide(t(41, 1), "staging", &staging, &[("production", &prod)]),
        EnvDecision::Supersede(_)
    ));
    assert!(matches!(
        decide(t(41, 1), "production", &prod, &[]),
        EnvDecision::Supersede(_)
    ));
    // A train that is not a hotfix never passes.
    let prod = facts(Some(t(40, 0)), Some(t(40, 0)), None);
    assert!(matches!(
        decide(t(41, 0), "staging", &staging, &[("production", &prod)]),
        EnvDecision::Supersede(_)
    ));
}

#[test]
fn a_superseded_deploy_supersedes_what_needs_it_and_the_train() {
    let g = Sdd::parse("t.yaml", GRAPH).unwrap();
    let mut o = train(t(1, 0));
    run(&mut o, "build", 1, &[JobState::Started, JobState::Success]);
    let mut envs = BTreeMap::new();
    envs.insert(
        "staging".to_string(),
        facts(Some(t(2, 0)), Some(t(2, 0)), None),
    );
    let ctx = PlanContext {
        now: 100,
        conditions: BTreeMap::new(),
        environments: Some(envs),
    };
    let p = plan(&g, "done", &o, &ctx);
    assert_eq!(
        p.step("deploy_staging").unwrap().state,
        StepState::Superseded
    );
    assert_eq!(p.step("verify").unwrap().state, StepState::Superseded);
    assert_eq!(
        p.step("verify").unwrap().reason.as_deref(),
        Some("upstream `deploy_staging` superseded")
    );
    assert_eq!(p.state, TrainState::Superseded);
    assert!(matches!(&p.actions[..], [Action::Supersede { step, .. }] if step == "deploy_staging"));
    // Recorded: no more action, same states.
    o.superseded.insert("deploy_staging".into(), ev());
    let p = plan(&g, "done", &o, &ctx);
    assert!(p.actions.is_empty());
    assert_eq!(p.state, TrainState::Superseded);
    assert!(p.state.is_finished());
}

#[test]
fn going_claims_before_it_triggers() {
    let g = Sdd::parse("t.yaml", GRAPH).unwrap();
    let mut o = train(t(3, 0));
    run(&mut o, "build", 1, &[JobState::Started, JobState::Success]);
    let mut envs = BTreeMap::new();
    envs.insert("staging".to_string(), EnvFacts::default());
    let ctx = PlanContext {
        now: 100,
        conditions: BTreeMap::new(),
        environments: Some(envs),
    };
    let p = plan(&g, "done", &o, &ctx);
    let names: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| a.tag_name(t(3, 0)))
        .collect();
    assert_eq!(names, ["env=staging.1", "release=3.0=deploy_staging.1"]);
}

/// The remote: each train's tags and the claims, written create-only.
#[derive(Clone)]
struct Remote {
    trains: Vec<Observed>,
    claims: BTreeMap<u32, TrainId>,
}

fn facts_of(g: &Sdd, view: &Remote) -> crate::model::env::Environments {
    let claims: Vec<SeenClaim> = view
        .claims
        .iter()
        .map(|(k, t)| SeenClaim {
            turn: *k,
            train: Some(*t),
        })
        .collect();
    let trains = view
        .trains
        .iter()
        .filter_map(|o| {
            standing(g, "done", o, 100)
                .remove("staging")
                .map(|s| (o.train, s))
        })
        .collect();
    let mut envs = BTreeMap::new();
    envs.insert("staging".to_string(), combine(&claims, &trains));
    envs
}

/// One planner acting on `view` (maybe stale) against the real `remote`: every push is
/// create-only, and a trigger after a claim it did not create is not pushed (as `tick`).
/// Returns the trains whose first deploy trigger it created.
fn act(g: &Sdd, view: &Remote, remote: &mut Remote) -> Vec<TrainId> {
    let envs = facts_of(g, view);
    let mut first = Vec::new();
    for o in &view.trains {
        let ctx = PlanContext {
            now: 100,
            conditions: BTreeMap::new(),
            environments: Some(envs.clone()),
        };
        let p = plan(g, "done", o, &ctx);
        let i = o.train.number as usize - 1;
        let mut unclaimed = false;
        for a in &p.actions {
            match a {
                Action::Claim { turn, .. } => {
                    if remote.claims.contains_key(turn) {
                        unclaimed = true;
                    } else {
                        remote.claims.insert(*turn, o.train);
                    }
                }
                Action::Trigger { step, job, .. } => {
                    if step == "deploy_staging" && unclaimed {
                        continue;
                    }
                    let atts = remote.trains[i].attempts.entry(step.clone()).or_default();
                    if !atts.contains_key(job) {
                        atts.insert(
                            *job,
                            Attempt {
                                triggered: Some(ev()),
                                ..Default::default()
                            },
                        );
                        if step == "deploy_staging" && *job == 1 {
                            first.push(o.train);
                        }
                    }
                }
                Action::Supersede { step, .. } => {
                    remote.trains[i]
                        .superseded
                        .entry(step.clone())
                        .or_insert_with(ev);
                }
                _ => {}
            }
        }
    }
    first
}

/// The CI: the first attempt of train `i` that has not ended ends (success unless `fail`).
fn ci(remote: &mut Remote, i: usize, fail: bool) {
    let o = &mut remote.trains[i];
    for atts in o.attempts.values_mut() {
        if let Some(a) = atts.values_mut().find(|a| a.outcome().is_none()) {
            a.states.insert(JobState::Started, ev());
            let end = if fail {
                JobState::Failure
            } else {
                JobState::Success
            };
            a.states.insert(end, ev());
            return;
        }
    }
}

fn in_flight(remote: &Remote) -> usize {
    remote
        .trains
        .iter()
        .filter(|o| {
            o.attempts
                .get("deploy_staging")
                .and_then(|a| a.values().next_back())
                .is_some_and(|a| a.outcome().is_none_or(|s| s == JobState::Started))
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// Four planners, each acting on a view it took at some earlier moment, over 2 to 6
    /// trains and a CI that fails at random: never two deploys in flight, first deploys
    /// in train order (numbers never go down), no superseded train ever triggered, and
    /// once everything settles every train has succeeded, failed or been superseded.
    #[test]
    fn racing_stale_planners_never_deploy_twice_or_backwards(
        n in 2usize..7,
        ops in proptest::collection::vec((0u8..3, 0usize..8, any::<bool>()), 1..120),
    ) {
        let g = Sdd::parse("t.yaml", GRAPH).unwrap();
        let mut remote = Remote {
            trains: (1..=n as u32).map(|k| train(t(k, 0))).collect(),
            claims: BTreeMap::new(),
        };
        let mut views: Vec<Remote> = vec![remote.clone(); 4];
        let mut order: Vec<TrainId> = Vec::new();
        let mut step = |remote: &mut Remote, views: &mut Vec<Remote>, (kind, a, b): (u8, usize, bool)| {
            match kind {
                0 => views[a % 4] = remote.clone(),
                1 => {
                    let view = views[a % 4].clone();
                    order.extend(act(&g, &view, remote));
                }
                _ => ci(remote, a % n, b && a % 3 == 0),
            }
        };
        for op in ops {
            step(&mut remote, &mut views, op);
            prop_assert!(in_flight(&remote) <= 1, "two deploys in flight");
        }
        // Settle: fresh views, a CI that succeeds.
        for _ in 0..(8 * n) {
            step(&mut remote, &mut views, (0, 0, false));
            step(&mut remote, &mut views, (1, 0, false));
            prop_assert!(in_flight(&remote) <= 1, "two deploys in flight");
            for i in 0..n {
                step(&mut remote, &mut views, (2, i, false));
            }
        }
        prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "deploys went backwards: {order:?}");
        for o in &remote.trains {
            let tried = o.attempts.get("deploy_staging").is_some_and(|a| !a.is_empty());
            prop_assert!(!(tried && o.superseded.contains_key("deploy_staging")), "{} superseded and triggered", o.train);
        }
        let envs = facts_of(&g, &remote);
        let ctx = PlanContext { now: 100, conditions: BTreeMap::new(), environments: Some(envs) };
        for o in &remote.trains {
            let p = plan(&g, "done", o, &ctx);
            prop_assert!(
                matches!(p.state, TrainState::Succeeded | TrainState::Failed | TrainState::Superseded),
                "{} ends {:?}", o.train, p.state
            );
            // The independent model: a train deploys iff no newer train deployed before it
            // (claimed first), i.e. it is superseded iff a newer train claimed.
            let newer_claimed = remote.claims.values().any(|c| *c > o.train);
            let tried = o.attempts.get("deploy_staging").is_some_and(|a| !a.is_empty());
            if p.state == TrainState::Superseded {
                prop_assert!(newer_claimed && !tried);
            }
        }
    }
}

fn control(
    seq: u32,
    action: crate::model::freeze::Action,
    until: Option<i64>,
) -> crate::model::freeze::Control {
    use crate::model::freeze::Action;
    crate::model::freeze::Control {
        seq,
        action,
        by: "ops <ops@x>".into(),
        at: 50,
        reason: "release review".into(),
        until,
        train: (action == Action::Pin).then(|| t(1, 0)),
        commit: None,
    }
}

/// Plan train 3.0 (build done) with these staging controls and windows, at `now`.
fn plan_held(
    controls: Vec<crate::model::freeze::Control>,
    window: Option<&str>,
    now: i64,
    facts: EnvFacts,
) -> Plan {
    let mut graph = GRAPH.to_string();
    if let Some(w) = window {
        graph = graph.replace(
            "environment: staging}",
            &format!("environment: staging, freeze: [\"{w}\"]}}"),
        );
    }
    let g = Sdd::parse("sdd.yaml", &graph).expect("graph");
    let mut o = train(t(3, 0));
    run(&mut o, "build", 1, &[JobState::Started, JobState::Success]);
    let mut f = facts;
    f.controls = crate::model::freeze::Controls::fold(controls, []);
    let mut envs = BTreeMap::new();
    envs.insert("staging".to_string(), f);
    let ctx = PlanContext {
        now,
        conditions: BTreeMap::new(),
        environments: Some(envs),
    };
    plan(&g, "done", &o, &ctx)
}

fn deploy_of(p: &Plan) -> (StepState, String, Option<String>, usize) {
    let v = p.step("deploy_staging").expect("deploy step");
    (
        v.state,
        v.reason.clone().unwrap_or_default(),
        v.until.clone(),
        p.actions.len(),
    )
}

#[test]
fn a_frozen_environment_holds_a_deploy_that_would_be_triggered() {
    use crate::model::freeze::Action;
    let open = EnvFacts::default();
    let (state, why, until, actions) = deploy_of(&plan_held(
        vec![control(1, Action::Freeze, None)],
        None,
        100,
        open.clone(),
    ));
    assert_eq!((state, actions), (StepState::Frozen, 0));
    assert!(
        why.contains("frozen by ops <ops@x>: release review"),
        "{why}"
    );
    assert_eq!(until, None);
    // A freeze with an end: frozen before it, deploys after it.
    let (state, why, until, _) = deploy_of(&plan_held(
        vec![control(1, Action::Freeze, Some(200))],
        None,
        100,
        open.clone(),
    ));
    assert_eq!(state, StepState::Frozen);
    assert_eq!(until.as_deref(), Some("1970-01-01T00:03:20Z"));
    assert!(why.contains("until 1970-01-01T00:03:20Z"), "{why}");
    let (state, _, _, actions) = deploy_of(&plan_held(
        vec![control(1, Action::Freeze, Some(200))],
        None,
        200,
        open.clone(),
    ));
    assert_eq!((state, actions), (StepState::Pending, 2));
    // Unfrozen: the claim and the trigger.
    let (_, _, _, actions) = deploy_of(&plan_held(
        vec![
            control(1, Action::Freeze, None),
            control(2, Action::Unfreeze, None),
        ],
        None,
        100,
        open,
    ));
    assert_eq!(actions, 2);
}

#[test]
fn a_freeze_lets_the_deploy_in_flight_finish() {
    use crate::model::freeze::Action;
    // 3.0 claimed staging and stopped before its trigger: the claim was the decision.
    let holds = facts(Some(t(3, 0)), Some(t(3, 0)), Some(t(3, 0)));
    let p = plan_held(vec![control(1, Action::Freeze, None)], None, 100, holds);
    assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
    // And a frozen environment still supersedes an older train: that deploys nothing.
    let newer = facts(Some(t(4, 0)), Some(t(4, 0)), None);
    let p = plan_held(vec![control(1, Action::Freeze, None)], None, 100, newer);
    assert_eq!(deploy_of(&p).0, StepState::Superseded);
}

#[test]
fn a_pinned_environment_holds_every_deploy_until_unpinned() {
    use crate::model::freeze::Action;
    let (state, why, _, actions) = deploy_of(&plan_held(
        vec![control(1, Action::Pin, None)],
        None,
        100,
        EnvFacts::default(),
    ));
    assert_eq!((state, actions), (StepState::Frozen, 0));
    assert!(
        why.starts_with("pinned: `staging` was rolled back to 1.0 by ops <ops@x>: release review"),
        "{why}"
    );
    let (_, _, _, actions) = deploy_of(&plan_held(
        vec![
            control(1, Action::Pin, None),
            control(2, Action::Unpin, None),
        ],
        None,
        100,
        EnvFacts::default(),
    ));
    assert_eq!(actions, 2);
}

#[test]
fn a_scheduled_window_holds_deploys_inside_it_only() {
    let w = "Fri 16:00 - Mon 08:00 Europe/Berlin";
    let friday_17h = crate::model::time::parse_rfc3339("2026-12-04T16:00:00Z").expect("t");
    let wednesday = crate::model::time::parse_rfc3339("2026-12-02T12:00:00Z").expect("t");
    let (state, why, until, actions) =
        deploy_of(&plan_held(vec![], Some(w), friday_17h, EnvFacts::default()));
    assert_eq!((state, actions), (StepState::Frozen, 0));
    assert_eq!(until.as_deref(), Some("2026-12-07T07:00:00Z"));
    assert!(why.contains(w), "{why}");
    let (state, _, _, actions) =
        deploy_of(&plan_held(vec![], Some(w), wednesday, EnvFacts::default()));
    assert_eq!((state, actions), (StepState::Pending, 2));
}
