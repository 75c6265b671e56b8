//! Exactly once: racing ticks, starts, unblocks, retries and timeouts.

use std::collections::BTreeSet;
use std::thread;

use crate::harness::{Env, SMALL_SDD};
use crate::support::servers::Kind;

const WIDE_SDD: &str = "\
a: []
b: []
c: []
d: [a, b]
e: [b, c]
f: [d, e]
g: [f]
done: {needs: [g], virtual: true}
";

#[test]
fn four_racing_ticks_trigger_each_step_exactly_once() {
    let env = Env::new(Kind::Daemon, WIDE_SDD);
    let t = env.start();
    let steps = ["a", "b", "c", "d", "e", "f", "g"];
    thread::scope(|s| {
        for i in 0..4 {
            let env = &env;
            let t = t.clone();
            s.spawn(move || {
                // Each tick process has its own cache, as on four machines.
                let cache = env.root.path().join(format!("cache-{i}"));
                for _ in 0..400 {
                    let out = env.run_cmd(
                        env.cmd("konductor")
                            .env("KONDUCTOR_CACHE_DIR", &cache)
                            .args(["tick", "--train", &t]),
                    );
                    assert_eq!(out.code, 0, "{out:?}");
                    if out.stdout.contains("succeeded") {
                        return;
                    }
                }
                panic!("tick loop {i} did not see the train finish");
            });
        }
        // The CI: every new trigger gets a job that succeeds.
        let env = &env;
        s.spawn(move || {
            let mut done = BTreeSet::new();
            for _ in 0..2000 {
                for tag in env.tags("1.0") {
                    if tag.matches('=').count() == 2 && done.insert(tag.clone()) {
                        env.report(&tag, "started").ok();
                        env.report(&tag, "success").ok();
                    }
                }
                if done.len() == 7 {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            panic!("the CI did not see every step");
        });
    });
    let tags = env.tags("1.0");
    let triggers: Vec<&String> = tags
        .iter()
        .filter(|x| x.matches('=').count() == 2)
        .collect();
    let want: Vec<String> = steps.iter().map(|s| format!("release=1.0={s}.1")).collect();
    assert_eq!(
        triggers,
        want.iter().collect::<Vec<_>>(),
        "exactly one trigger per step"
    );
    assert_eq!(env.status("1.0")["state"], "succeeded");
}

#[test]
fn racing_starts_get_different_numbers() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let ids: Vec<String> = thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    let cache = env.root.path().join(format!("cache-{i}"));
                    env.run_cmd(
                        env.cmd("konductor")
                            .env("KONDUCTOR_CACHE_DIR", cache)
                            .args(["start", "--sha", &env.sha]),
                    )
                    .ok()
                    .trim()
                    .to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), 4, "{ids:?}");
    let trains: Vec<String> = env
        .server
        .tags()
        .into_iter()
        .filter(|t| !t.contains("=") || t.matches('=').count() == 1)
        .collect();
    assert_eq!(
        trains,
        ["release=1.0", "release=2.0", "release=3.0", "release=4.0"]
    );
}

const GATE_SDD: &str = "\
a: []
gate: {needs: [a], manual: true, approvers: [ok@example.com, \"Other <other@example.com>\"]}
b: [gate]
done: {needs: [b], virtual: true}
";

#[test]
fn racing_unblocks_record_one_attestation() {
    let env = Env::new(Kind::Daemon, GATE_SDD);
    let t = env.start();
    env.tick(&t);
    env.k(&[
        "unblock",
        "--train",
        &t,
        "--step",
        "gate",
        "--by",
        "ok@example.com",
    ])
    .fails(2, "not waiting: its dependencies are not done yet (`a`)");
    env.report("release=1.0=a.1", "success").ok();
    env.tick(&t);
    assert_eq!(env.step_state(&t, "gate"), "blocked");
    assert_eq!(env.status(&t)["state"], "blocked");
    env.k(&["unblock", "--train", &t, "--step", "a"])
        .fails(2, "step `a` is not a manual gate");
    env.k(&["unblock", "--train", &t, "--step", "gat"])
        .fails(2, "did you mean `gate`?");
    env.k(&[
        "unblock",
        "--train",
        &t,
        "--step",
        "gate",
        "--by",
        "Mallory <mallory@example.com>",
    ])
    .fails(2, "may not unblock `gate`");
    let outs: Vec<String> = thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let env = &env;
                let t = t.clone();
                s.spawn(move || {
                    let cache = env.root.path().join(format!("cache-u{i}"));
                    env.run_cmd(
                        env.cmd("konductor")
                            .env("KONDUCTOR_CACHE_DIR", cache)
                            .args([
                                "unblock",
                                "--train",
                                &t,
                                "--step",
                                "gate",
                                "--by",
                                "Ok Person <ok@example.com>",
                                "--reason",
                                "flavors reviewed",
                            ]),
                    )
                    .ok()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        outs.iter().filter(|o| o.contains("gate unblocked")).count(),
        1,
        "{outs:?}"
    );
    assert_eq!(
        outs.iter()
            .filter(|o| o.contains("already-unblocked"))
            .count(),
        3,
        "{outs:?}"
    );
    assert_eq!(
        env.tags("1.0")
            .iter()
            .filter(|x| x.ends_with("=unblocked"))
            .count(),
        1
    );
    assert!(env.tick(&t).contains("trigger release=1.0=b.1"));
    let s = env.status(&t);
    let gate = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "gate")
        .unwrap()
        .clone();
    assert_eq!(gate["state"], "success");
    assert_eq!(gate["unblocked_by"], "Ok Person <ok@example.com>");
    // Unblocking twice is a no-op.
    assert!(env
        .k(&[
            "unblock",
            "--train",
            &t,
            "--step",
            "gate",
            "--by",
            "ok@example.com"
        ])
        .ok()
        .contains("already-unblocked"));
}

#[test]
fn a_retry_racing_a_tick_makes_one_new_attempt() {
    let env = Env::new(
        Kind::Daemon,
        "a: {needs: [], retries: 1}\ndone: {needs: [a], virtual: true}\n",
    );
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "failure").ok();
    thread::scope(|s| {
        let env = &env;
        let t2 = t.clone();
        s.spawn(move || {
            env.run_cmd(
                env.cmd("konductor")
                    .env("KONDUCTOR_CACHE_DIR", env.root.path().join("c1"))
                    .args(["retry", "--train", &t2, "--step", "a"]),
            )
            .ok()
        });
        for i in 0..3 {
            let t = t.clone();
            s.spawn(move || {
                env.run_cmd(
                    env.cmd("konductor")
                        .env(
                            "KONDUCTOR_CACHE_DIR",
                            env.root.path().join(format!("c2{i}")),
                        )
                        .args(["tick", "--train", &t]),
                )
                .ok()
            });
        }
    });
    let triggers: Vec<String> = env
        .tags("1.0")
        .into_iter()
        .filter(|x| x.matches('=').count() == 2)
        .collect();
    assert_eq!(triggers, ["release=1.0=a.1", "release=1.0=a.2"]);
    // Retrying a step that has not failed is refused.
    env.k(&["retry", "--train", &t, "--step", "a"])
        .fails(2, "not failed");
}

#[test]
fn a_timeout_is_recorded_once_however_many_ticks_see_it() {
    let env = Env::new(Kind::Bare, "a: {needs: [], timeout: 1m}\nb: [a]\n");
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "started").ok();
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    thread::scope(|s| {
        for i in 0..4 {
            let env = &env;
            let (t, later) = (t.clone(), later.clone());
            s.spawn(move || {
                env.run_cmd(
                    env.cmd("konductor")
                        .env("KONDUCTOR_NOW", later)
                        .env("KONDUCTOR_CACHE_DIR", env.root.path().join(format!("t{i}")))
                        .args(["tick", "--train", &t]),
                )
                .ok()
            });
        }
    });
    let timeouts: Vec<String> = env
        .tags("1.0")
        .into_iter()
        .filter(|x| x.ends_with("=timeout"))
        .collect();
    assert_eq!(timeouts, ["release=1.0=a.1=timeout"]);
    let s = env.status(&t);
    assert_eq!(s["state"], "failed", "{s}");
    assert_eq!(env.step_state(&t, "a"), "failure");
    // A report arriving after the timeout is recorded, but moves nothing.
    env.report("release=1.0=a.1", "success").ok();
    assert_eq!(env.step_state(&t, "a"), "failure");
    assert!(!env.tick(&t).contains("release=1.0=b.1"));
    let log = env.k(&["log", "--train", &t]).ok();
    assert!(
        log.contains("timeout") && log.contains("reported nothing within 1m"),
        "{log}"
    );
}
