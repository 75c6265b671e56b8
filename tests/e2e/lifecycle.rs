//! Train lifecycle against a real remote: cancel, changed-file conditions, lost triggers,
//! staging then production.

use crate::harness::{Env, SMALL_SDD};
use crate::support::servers::{commit_files, Kind};

#[test]
fn cancel_stops_a_train_and_late_reports_move_nothing() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "started").ok();
    let out = env
        .k(&["cancel", "--train", &t, "--reason", "bad commit"])
        .ok();
    assert!(
        out.contains("cancelled by Test Runner <runner@example.com>"),
        "{out}"
    );
    assert!(env
        .k(&["cancel", "--train", &t])
        .ok()
        .contains("already-cancelled"));
    env.report("release=1.0=a.1", "success").ok();
    env.report("release=1.0=b.1", "success").ok();
    assert!(env.tick(&t).contains("cancelled (nothing to do)"));
    assert!(!env
        .tags("1.0")
        .iter()
        .any(|x| x.starts_with("release=1.0=c.")));
    let s = env.status(&t);
    assert_eq!(s["state"], "cancelled");
    assert_eq!(s["cancelled_by"], "Test Runner <runner@example.com>");
    assert_eq!(s["cancel_reason"], "bad commit");
    env.k(&["retry", "--train", &t, "--step", "c"])
        .fails(2, "cancelled");
}

const GATED: &str = "\
build: []
stage: {needs: [build], virtual: true}
gate: {needs: [stage], manual: true, if_changed: [flavors.yaml]}
prod: [gate]
ship: {needs: [prod], virtual: true}
";

fn run_to_rest(env: &Env, t: &str) {
    for _ in 0..10 {
        let out = env.tick(t);
        for line in out.lines() {
            if let Some(tag) = line
                .split_whitespace()
                .find(|w| w.starts_with("release=") && w.matches('=').count() == 2)
            {
                env.report(tag, "success").ok();
            }
        }
        if out.contains("nothing to do") {
            return;
        }
    }
}

#[test]
fn staging_then_production_with_a_changed_file_gate() {
    let env = Env::with_files(
        Kind::Bare,
        &[("sdd.yaml", GATED), ("flavors.yaml", "a: 1\n")],
    );
    // First train: no earlier train reached `ship`, so the gate applies.
    let t1 = env.start();
    run_to_rest(&env, &t1);
    assert_eq!(env.status(&t1)["state"], "blocked");
    assert_eq!(env.status(&t1)["placement"], "staging");
    env.k(&[
        "unblock", "--train", &t1, "--step", "gate", "--reason", "first",
    ])
    .ok();
    run_to_rest(&env, &t1);
    assert_eq!(env.status(&t1)["state"], "succeeded");
    assert_eq!(env.status(&t1)["placement"], "production");

    // Second train: only app code changed: the gate is skipped, with the reason.
    commit_files(&env.server, &[("app.py", "print(2)\n")], "app only");
    let sha2 = env
        .server
        .git(&["rev-parse", "refs/heads/main"])
        .trim()
        .to_string();
    let t2 = env.k(&["start", "--sha", &sha2]).ok().trim().to_string();
    run_to_rest(&env, &t2);
    let s = env.status(&t2);
    assert_eq!(s["state"], "succeeded", "{s}");
    let gate = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "gate")
        .unwrap()
        .clone();
    assert_eq!(gate["state"], "skipped");
    assert!(
        gate["reason"]
            .as_str()
            .unwrap()
            .contains("nothing matching `flavors.yaml` changed since train 1.0"),
        "{gate}"
    );

    // Third train: flavors.yaml changed again: the gate applies.
    commit_files(&env.server, &[("flavors.yaml", "a: 2\n")], "flavors");
    let sha3 = env
        .server
        .git(&["rev-parse", "refs/heads/main"])
        .trim()
        .to_string();
    let t3 = env.k(&["start", "--sha", &sha3]).ok().trim().to_string();
    run_to_rest(&env, &t3);
    assert_eq!(env.status(&t3)["state"], "blocked");
    assert_eq!(env.step_state(&t3, "gate"), "blocked");

    // The list shows which train is where.
    let list = env.k(&["status"]).ok();
    assert!(list.contains("production: train 2.0"), "{list}");
    assert!(list.contains("staging: train 3.0"), "{list}");
}

#[test]
fn a_lost_trigger_is_re_triggered_as_the_next_attempt() {
    let env = Env::new(
        Kind::Daemon,
        "a: {needs: [], trigger_timeout: 1m}\ndone: {needs: [a], virtual: true}\n",
    );
    let t = env.start();
    env.tick(&t);
    assert!(env.tick(&t).contains("nothing to do"));
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 120)
        .to_string();
    let out = env
        .run_cmd(
            env.cmd("konductor")
                .env("KONDUCTOR_NOW", &later)
                .args(["tick", "--train", &t]),
        )
        .ok();
    assert!(
        out.contains("trigger release=1.0=a.2 (re-trigger: attempt 1 was never started)"),
        "{out}"
    );
    env.report("release=1.0=a.2", "success").ok();
    assert_eq!(env.status(&t)["state"], "succeeded");
}

#[test]
fn a_train_keeps_the_graph_it_started_with() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let t = env.start();
    // main moves on with a different graph; train 1.0 is unaffected.
    commit_files(&env.server, &[("sdd.yaml", "z: []\n")], "new graph");
    assert!(env.tick(&t).contains("release=1.0=a.1"));
    // `--sdd` overrides it.
    let f = env.root.path().join("other.yaml");
    std::fs::write(&f, "q: []\nr: [q]\n").unwrap();
    let out = env
        .k(&[
            "tick",
            "--train",
            &t,
            "--sdd",
            f.to_str().unwrap(),
            "--dry-run",
        ])
        .ok();
    assert!(
        out.contains("trigger release=1.0=q.1") && out.contains("dry-run"),
        "{out}"
    );
    assert!(!env.tags("1.0").iter().any(|x| x.contains("=q.")));
}
