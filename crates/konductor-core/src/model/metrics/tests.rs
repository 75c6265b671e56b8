//! Each figure from constructed observations, with its edge cases.

use super::*;
use crate::model::plan::{plan, PlanContext};
use crate::model::train::Attempt;

const GRAPH: &str = "
build: []
gate:
  needs: [build]
  manual: true
deploy_prod:
  needs: [gate]
  environment: production
  deploy_tag: k8s-production
verify:
  needs: [deploy_prod]
done:
  needs: [verify]
  virtual: true
";

const DAY: i64 = 86_400;
/// Now, in the tests: 2026-11-30T00:00:00Z.
const NOW: i64 = 1_795_996_800;

fn ev(at: i64) -> Event {
    Event {
        by: "t <t@x>".into(),
        at,
        message: String::new(),
        tag: String::new(),
        signer: None,
    }
}

fn graph() -> Sdd {
    Sdd::parse("t.yaml", GRAPH).unwrap()
}

/// A train opened at `at`.
fn opened(n: u32, at: i64) -> Observed {
    Observed::opened(TrainId::new(n, 0), format!("{n:040}"), ev(at))
}

/// A run of `step`: triggered at `trig`, started then, ended in `end` at `at`.
fn run(o: &mut Observed, step: &str, job: u32, trig: i64, end: JobState, at: i64) {
    let mut a = Attempt {
        triggered: Some(ev(trig)),
        ..Default::default()
    };
    a.states.insert(JobState::Started, ev(trig));
    a.states.insert(end, ev(at));
    o.attempts.entry(step.into()).or_default().insert(job, a);
}

/// A train that went all the way: build 0→60, gate ready at 60 and unblocked at 360,
/// deploy triggered at 400, success at 460, verify 470→500. Offsets from `t0`.
fn full(n: u32, t0: i64) -> Observed {
    let mut o = opened(n, t0);
    run(&mut o, "build", 1, t0, JobState::Success, t0 + 60);
    o.unblocked.insert("gate".into(), ev(t0 + 360));
    run(
        &mut o,
        "deploy_prod",
        1,
        t0 + 400,
        JobState::Success,
        t0 + 460,
    );
    run(&mut o, "verify", 1, t0 + 470, JobState::Success, t0 + 500);
    o
}

struct Loaded {
    obs: Observed,
    sdd: Sdd,
    plan: Plan,
    commit_time: Option<i64>,
}

fn load(obs: Observed, commit_time: Option<i64>) -> Loaded {
    let sdd = graph();
    let ctx = PlanContext {
        now: NOW,
        ..Default::default()
    };
    let plan = plan(&sdd, "done", &obs, &ctx);
    Loaded {
        obs,
        sdd,
        plan,
        commit_time,
    }
}

fn inputs(l: &[Loaded]) -> Vec<TrainInput<'_>> {
    l.iter()
        .map(|l| TrainInput {
            obs: &l.obs,
            sdd: &l.sdd,
            plan: &l.plan,
            commit_time: l.commit_time,
        })
        .collect()
}

fn opts() -> MetricsOptions {
    MetricsOptions {
        env: "production".into(),
        now: NOW,
        window_secs: 30 * DAY,
    }
}

fn metrics(l: &[Loaded], commits: &[DeployCommit]) -> Metrics {
    compute(&inputs(l), commits, &opts())
}

fn deploy_commit(at: i64, train: u32, rollback: bool) -> DeployCommit {
    let msg = if rollback {
        format!("rollback k8s-production to train {train}.0\n\ntrain: {train}.0\nsource: {}\nrollback: true\nreason: bad\nby: t <t@x>\n", "0".repeat(40))
    } else {
        format!("deploy train {train}.0 to k8s-production\n\ntrain: {train}.0\nsource: {}\nby: t <t@x>\n", "0".repeat(40))
    };
    DeployCommit::from_message(&format!("{at:040}"), at, &msg)
}

#[test]
fn no_trains_means_no_deploys_and_no_rate() {
    let m = metrics(&[], &[]);
    assert_eq!(m.trains.len(), 6);
    assert!(m.trains.values().all(|n| *n == 0));
    assert_eq!(m.dora.deploys, 0);
    assert_eq!(m.dora.deploys_per_day, 0.0);
    assert_eq!(m.dora.change_failure_rate, None, "0/0 is no rate, not 0");
    assert_eq!(m.dora.lead_time.median_secs, None);
    assert_eq!(m.dora.time_to_restore.count, 0);
    assert_eq!(m.window_secs, 30 * DAY);
    assert_eq!(m.since, "2026-10-31T00:00:00Z");
    let json = serde_json::to_value(&m).unwrap();
    assert!(json["dora"]["change_failure_rate"].is_null());
}

#[test]
fn a_single_deploy_gives_every_figure() {
    let t0 = NOW - 2 * DAY;
    let m = metrics(&[load(full(1, t0), Some(t0 - 3_600))], &[]);
    assert_eq!(m.trains["succeeded"], 1);
    assert_eq!(m.trains_read, 1);
    let d = &m.dora;
    assert_eq!(d.deploys, 1);
    assert!((d.deploys_per_day - 1.0 / 30.0).abs() < 1e-9);
    assert!((d.deploys_per_week - 7.0 / 30.0).abs() < 1e-9);
    // Commit an hour before the train opened, deploy 460 s after: lead time 4060 s.
    assert_eq!(d.deploy_list[0].lead_time_secs, Some(4_060));
    assert_eq!(d.lead_time.median_secs, Some(4_060.0));
    assert_eq!(d.change_failure_rate, Some(0.0));
    assert!(d.incidents.is_empty());
    // Steps: build 60 s, deploy 60 s, verify 30 s, each from its trigger.
    let secs: BTreeMap<&str, i64> = m
        .step_durations
        .iter()
        .map(|s| (s.step.as_str(), s.secs))
        .collect();
    assert_eq!(
        secs,
        BTreeMap::from([("build", 60), ("deploy_prod", 60), ("verify", 30)])
    );
    assert_eq!(m.step_duration_histograms["build"].count, 1);
    // The gate was ready when build succeeded (60) and unblocked at 360.
    assert_eq!(m.gate_waits.len(), 1);
    assert_eq!(m.gate_waits[0].secs, 300);
    // The deploy was ready at the unblock (360) and triggered at 400.
    assert_eq!(m.env_waits.len(), 1);
    assert_eq!(m.env_waits[0].secs, 40);
    assert_eq!(m.env_waits[0].env.as_deref(), Some("production"));
    assert_eq!(m.env_wait_histograms["production"].sum, 40.0);
}

#[test]
fn a_failure_after_the_deploy_is_a_failed_change_until_the_next_deploy() {
    let t0 = NOW - 3 * DAY;
    let mut bad = full(1, t0);
    run(&mut bad, "verify", 1, t0 + 470, JobState::Failure, t0 + 500);
    let good = full(2, t0 + DAY);
    let m = metrics(&[load(bad, None), load(good, None)], &[]);
    let d = &m.dora;
    assert_eq!(d.deploys, 2);
    assert_eq!(d.failed_deploys, 1);
    assert_eq!(d.change_failure_rate, Some(0.5));
    assert_eq!(d.deploy_list[0].failed_by.as_deref(), Some("failure"));
    assert_eq!(d.deploy_list[0].failed_step.as_deref(), Some("verify"));
    assert_eq!(d.deploy_list[1].failed_by, None);
    // Failed at t0+500, restored by train 2's deploy at t0+DAY+460.
    assert_eq!(d.incidents.len(), 1);
    assert_eq!(d.incidents[0].secs, Some(DAY - 40));
    assert_eq!(d.incidents[0].restored_by.as_deref(), Some("deploy"));
    assert_eq!(d.time_to_restore.median_secs, Some((DAY - 40) as f64));
    assert_eq!(m.trains["failed"], 1);
    assert_eq!(m.trains["succeeded"], 1);
    // The lead time needs the commit time: unknown here.
    assert_eq!(d.lead_time.count, 0);
}

#[test]
fn a_failure_before_the_deploy_does_not_fail_the_change() {
    let t0 = NOW - 3 * DAY;
    let mut o = full(1, t0);
    // An earlier verify attempt that failed before this deploy is not after it.
    let mut early = Attempt {
        triggered: Some(ev(t0 + 1)),
        ..Default::default()
    };
    early.states.insert(JobState::Failure, ev(t0 + 2));
    o.attempts.get_mut("verify").unwrap().insert(0, early);
    let m = metrics(&[load(o, None)], &[]);
    assert_eq!(m.dora.failed_deploys, 0);
    assert_eq!(m.dora.change_failure_rate, Some(0.0));
}

#[test]
fn a_rollback_fails_the_deploy_it_undoes_and_restores() {
    let t0 = NOW - 5 * DAY;
    let one = full(1, t0);
    let mut two = full(2, t0 + DAY);
    // Train 2's verification fails; the deploy tag is rolled back to train 1 an hour later.
    run(
        &mut two,
        "verify",
        1,
        t0 + DAY + 470,
        JobState::Failure,
        t0 + DAY + 500,
    );
    let commits = [
        deploy_commit(t0 + 430, 1, false),
        deploy_commit(t0 + DAY + 430, 2, false),
        deploy_commit(t0 + DAY + 3_600, 1, true),
    ];
    let m = metrics(&[load(one, None), load(two, None)], &commits);
    let d = &m.dora;
    assert_eq!(d.rollbacks, 1);
    assert_eq!(d.deploys, 2);
    assert_eq!(d.failed_deploys, 1);
    // The verify failure came first: it names the cause.
    assert_eq!(d.deploy_list[1].failed_by.as_deref(), Some("failure"));
    assert_eq!(d.incidents.len(), 1);
    assert_eq!(d.incidents[0].restored_by.as_deref(), Some("rollback"));
    assert_eq!(d.incidents[0].secs, Some(3_600 - 500));

    // A rollback alone (no failure tag) fails the deploy it undoes, and opens no incident.
    let m = metrics(
        &[load(full(1, t0), None), load(full(2, t0 + DAY), None)],
        &commits,
    );
    assert_eq!(m.dora.failed_deploys, 1);
    assert_eq!(m.dora.deploy_list[1].failed_by.as_deref(), Some("rollback"));
    assert_eq!(m.dora.deploy_list[0].failed_by, None);
    assert_eq!(m.dora.change_failure_rate, Some(0.5));
    assert!(m.dora.incidents.is_empty());
}

#[test]
fn a_failed_deploy_is_restored_by_its_retry() {
    let t0 = NOW - DAY;
    let mut o = full(1, t0);
    let mut failed = Attempt {
        triggered: Some(ev(t0 + 380)),
        ..Default::default()
    };
    failed.states.insert(JobState::Timeout, ev(t0 + 390));
    o.attempts.get_mut("deploy_prod").unwrap().insert(0, failed);
    let m = metrics(&[load(o, None)], &[]);
    assert_eq!(m.dora.deploys, 1);
    assert_eq!(m.dora.incidents.len(), 1);
    assert_eq!(m.dora.incidents[0].step, "deploy_prod");
    assert_eq!(m.dora.incidents[0].secs, Some(460 - 390));
    // The deploy that restored is not a failed change itself.
    assert_eq!(m.dora.change_failure_rate, Some(0.0));
}

#[test]
fn an_incident_nothing_restored_stays_open() {
    let t0 = NOW - DAY;
    let mut o = full(1, t0);
    o.attempts.remove("deploy_prod");
    o.attempts.remove("verify");
    run(
        &mut o,
        "deploy_prod",
        1,
        t0 + 400,
        JobState::Failure,
        t0 + 460,
    );
    let m = metrics(&[load(o, None)], &[]);
    assert_eq!(m.dora.deploys, 0);
    assert_eq!(m.dora.change_failure_rate, None);
    assert_eq!(m.dora.incidents.len(), 1);
    assert_eq!(m.dora.incidents[0].restored_at, None);
    assert_eq!(m.dora.incidents[0].secs, None);
    assert_eq!(m.dora.time_to_restore.count, 0);
    assert_eq!(m.trains["failed"], 1);
}

#[test]
fn only_deploys_inside_the_window_count() {
    let old = full(1, NOW - 40 * DAY);
    let new = full(2, NOW - 10 * DAY);
    let l = [load(old, None), load(new, None)];
    let m = metrics(&l, &[]);
    assert_eq!(m.dora.deploys, 1);
    assert_eq!(m.dora.deploy_list[0].train, "2.0");
    // Only train 2's runs finished in the window.
    assert!(m.step_durations.iter().all(|s| s.train == "2.0"));
    let wide = compute(
        &inputs(&l),
        &[],
        &MetricsOptions {
            window_secs: 60 * DAY,
            ..opts()
        },
    );
    assert_eq!(wide.dora.deploys, 2);
    assert!((wide.dora.deploys_per_week - 2.0 / 60.0 * 7.0).abs() < 1e-9);
}

#[test]
fn a_window_longer_than_the_epoch_starts_at_zero() {
    let m = compute(
        &[],
        &[],
        &MetricsOptions {
            now: 1_000,
            window_secs: 365 * DAY,
            env: "production".into(),
        },
    );
    assert_eq!(m.since, "1970-01-01T00:00:00Z");
    assert_eq!(m.window_secs, 1_000);
}

#[test]
fn ends_before_their_start_count_as_zero_seconds() {
    let t0 = NOW - DAY;
    let mut o = opened(1, t0);
    // Anyone can write any tagger time: an end before the trigger is 0 s, not negative.
    run(&mut o, "build", 1, t0 + 100, JobState::Success, t0 + 10);
    o.unblocked.insert("gate".into(), ev(t0));
    let m = metrics(&[load(o, Some(NOW + DAY))], &[]);
    assert_eq!(m.step_durations[0].secs, 0);
    assert_eq!(m.gate_waits[0].secs, 0);
}

#[test]
fn waiting_gates_and_trains_by_state_are_now() {
    let t0 = NOW - DAY;
    let mut o = opened(1, t0);
    run(&mut o, "build", 1, t0, JobState::Success, t0 + 60);
    let m = metrics(&[load(o, None), load(opened(2, t0), None)], &[]);
    assert_eq!(m.gates_waiting, 1);
    assert_eq!(m.trains["blocked"], 1);
    assert_eq!(m.trains["running"], 1);
    assert!(
        m.gate_waits.is_empty(),
        "a wait that has not ended is no sample"
    );
}

#[test]
fn another_environment_has_no_production_deploys() {
    let m = compute(
        &inputs(&[load(full(1, NOW - DAY), None)]),
        &[],
        &MetricsOptions {
            env: "staging".into(),
            ..opts()
        },
    );
    assert_eq!(m.dora.deploys, 0);
    assert_eq!(m.env_waits.len(), 1, "waits cover every environment");
    assert_eq!(
        environment_names(&inputs(&[load(full(1, NOW), None)])),
        vec!["production".to_string()]
    );
}

#[test]
fn deploy_commit_messages_are_read() {
    let c = deploy_commit(5, 3, true);
    assert_eq!(c.train, Some(TrainId::new(3, 0)));
    assert!(c.rollback);
    assert!(!deploy_commit(5, 3, false).rollback);
    let junk = DeployCommit::from_message("x", -5, "rollback: true\n\ntrain: nope\n");
    assert_eq!((junk.train, junk.rollback, junk.at), (None, false, 0));
}

#[test]
fn histograms_are_cumulative_and_summaries_take_the_middle() {
    let h = Histogram::of([5, 10, 11, 700_000]);
    assert_eq!(h.counts[0], 2, "10 s is in the `le 10` bucket");
    assert_eq!(h.counts[1], 3);
    assert_eq!(*h.counts.last().unwrap(), 3, "past a week only in +Inf");
    assert_eq!(h.count, 4);
    assert_eq!(h.sum, 700_026.0);
    assert_eq!(Summary::of([3, 1, 2]).median_secs, Some(2.0));
    assert_eq!(Summary::of([4, 1, 2, 3]).median_secs, Some(2.5));
    assert_eq!(Summary::of([4, 1, 2, 3]).max_secs, Some(4));
    assert_eq!(Summary::of([]).mean_secs, None);
}

#[test]
fn windows_must_be_positive_durations() {
    assert_eq!(parse_window("30d"), Ok(30 * DAY));
    assert_eq!(parse_window("1d12h"), Ok(DAY + DAY / 2));
    for (bad, why) in [
        ("0d", "longer than zero"),
        ("0", "no unit"),
        ("", "invalid window"),
        ("30 days", "unknown unit"),
        ("-1d", "invalid window"),
        ("400d", "longer than"),
    ] {
        let e = parse_window(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn optional_fields_are_null_never_absent() {
    let m = metrics(&[load(full(1, NOW - DAY), None)], &[]);
    let j = serde_json::to_value(&m).unwrap();
    assert!(j["gate_waits"][0]["env"].is_null());
    assert!(j["dora"]["deploy_list"][0]["failed_step"].is_null());
    assert!(j["dora"]["deploy_list"][0]["lead_time_secs"].is_null());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn outcome() -> impl Strategy<Value = JobState> {
        prop_oneof![
            Just(JobState::Success),
            Just(JobState::Failure),
            Just(JobState::Timeout)
        ]
    }

    /// One step's runs: (trigger offset, outcome, end offset), any order of times.
    fn runs() -> impl Strategy<Value = Vec<(i64, JobState, i64)>> {
        proptest::collection::vec((-DAY..DAY, outcome(), -DAY..DAY), 0..3)
    }

    prop_compose! {
        fn a_train(n: u32)(
            t0 in (NOW - 40 * DAY)..(NOW + DAY),
            build in runs(),
            deploy in runs(),
            verify in runs(),
            unblock in proptest::option::of(-DAY..DAY),
            commit in proptest::option::of(any::<i64>()),
        ) -> (Observed, Option<i64>) {
            let mut o = opened(n, t0);
            for (step, rs) in [("build", build), ("deploy_prod", deploy), ("verify", verify)] {
                for (job, (trig, end, at)) in rs.into_iter().enumerate() {
                    run(&mut o, step, job as u32 + 1, t0 + trig, end, t0 + at);
                }
            }
            if let Some(u) = unblock {
                o.unblocked.insert("gate".into(), ev(t0 + u));
            }
            (o, commit)
        }
    }

    fn trains() -> impl Strategy<Value = Vec<(Observed, Option<i64>)>> {
        (0usize..5).prop_flat_map(|k| (1..=k as u32).map(a_train).collect::<Vec<_>>())
    }

    proptest! {
        /// Whatever the tags and their times say, every figure is consistent: no negative
        /// durations, a rate between 0 and 1, histograms that add up, every train counted
        /// once.
        #[test]
        fn figures_are_consistent_whatever_the_tags_say(
            ts in trains(),
            rollbacks in proptest::collection::vec((any::<bool>(), 1u32..5, (NOW - 40 * DAY)..NOW), 0..6),
            window in 1i64..(400 * DAY),
        ) {
            let l: Vec<Loaded> = ts.into_iter().map(|(o, c)| load(o, c)).collect();
            let mut commits: Vec<DeployCommit> = rollbacks
                .into_iter()
                .map(|(rb, t, at)| deploy_commit(at, t, rb))
                .collect();
            commits.sort_by_key(|c| c.at);
            let m = compute(&inputs(&l), &commits, &MetricsOptions { window_secs: window, ..opts() });
            prop_assert_eq!(m.trains.values().sum::<u64>(), l.len() as u64);
            let d = &m.dora;
            prop_assert!(d.failed_deploys <= d.deploys);
            match d.change_failure_rate {
                Some(r) => prop_assert!((0.0..=1.0).contains(&r)),
                None => prop_assert_eq!(d.deploys, 0),
            }
            prop_assert!((d.deploys_per_week - 7.0 * d.deploys_per_day).abs() < 1e-9);
            prop_assert_eq!(d.deploy_list.len() as u64, d.deploys);
            prop_assert!(d.deploy_list.iter().all(|x| x.lead_time_secs.is_none_or(|s| s >= 0)));
            prop_assert!(d.incidents.iter().all(|i| i.secs.is_none_or(|s| s >= 0)));
            prop_assert_eq!(
                d.time_to_restore.count,
                d.incidents.iter().filter(|i| i.secs.is_some()).count() as u64
            );
            prop_assert!(m.step_durations.iter().all(|s| s.secs >= 0));
            prop_assert!(m.gate_waits.iter().chain(&m.env_waits).all(|w| w.secs >= 0));
            let hs = m.step_duration_histograms.values()
                .chain(m.env_wait_histograms.values())
                .chain([&m.gate_wait_histogram]);
            let mut total = 0;
            for h in hs {
                prop_assert!(h.counts.windows(2).all(|w| w[0] <= w[1]));
                prop_assert!(h.counts.last().is_none_or(|c| *c <= h.count));
                total += h.count;
            }
            prop_assert_eq!(
                total,
                (m.step_durations.len() + m.env_waits.len() + m.gate_waits.len()) as u64
            );
        }
    }
}
