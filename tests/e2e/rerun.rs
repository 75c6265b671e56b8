//! The CI's Re-run button: a report on a trigger whose attempt already ended is a re-run of
//! that attempt (`…=rerun.<k>=<state>`), and the newest re-run counts. And the audit log's
//! causal order with same-second events.

use std::thread;

use konductor_core::cifilter::{
    circleci_trigger_filter, github_trigger_patterns, CircleciFilter, GithubRefFilter,
};
use serde_json::Value;

use crate::harness::{step_of, Env, SMALL_SDD};
use crate::support::servers::Kind;

#[test]
fn a_ci_rerun_after_a_failure_counts_and_advances_the_train() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=b.1", "success").ok();
    env.report("release=1.0=a.1", "started").ok();
    env.report("release=1.0=a.1", "failure").ok();
    assert!(env.tick(&t).contains("failed (nothing to do)"));

    // The CI's Re-run button: the same trigger reports again.
    let out = env.report("release=1.0=a.1", "started").ok();
    assert!(
        out.contains("release=1.0=a.1=rerun.1=started: created"),
        "{out}"
    );
    assert_eq!(env.step_state(&t, "a"), "started");
    assert_eq!(env.status(&t)["state"], "running");
    let out = env.report("release=1.0=a.1", "failure").ok();
    assert!(
        out.contains("release=1.0=a.1=rerun.1=failure: created"),
        "{out}"
    );
    assert_eq!(env.step_state(&t, "a"), "failure");
    // A second re-run succeeds: it counts, and the train goes on.
    env.report("release=1.0=a.1", "started").ok();
    let out = env.report("release=1.0=a.1", "success").ok();
    assert!(
        out.contains("release=1.0=a.1=rerun.2=success: created"),
        "{out}"
    );
    let again = env.report("release=1.0=a.1", "success").ok();
    assert!(again.contains("already-recorded"), "{again}");
    assert!(env.tick(&t).contains("trigger release=1.0=c.1"));
    let s = env.status(&t);
    let a = step_of(&s, "a");
    assert_eq!(a["state"], "success", "{s}");
    assert_eq!(a["attempt"], 1);
    assert_eq!(a["attempts"][0]["rerun"], 2, "{a}");
    assert_eq!(a["attempts"][0]["state"], "success");
    assert_eq!(
        step_of(&s, "b")["attempts"][0].get("rerun"),
        None,
        "a first run has no re-run number"
    );

    // `konductor retry` still works, and so does a re-run of the retry.
    env.report("release=1.0=c.1", "failure").ok();
    env.k(&["retry", "--train", &t, "--step", "c"]).ok();
    env.report("release=1.0=c.2", "failure").ok();
    env.report("release=1.0=c.2", "success").ok();
    assert!(env.tick(&t).contains("trigger release=1.0=d.1"));

    // Status, log and board show the re-runs.
    let text = env.k(&["status", "--train", &t]).ok();
    assert!(text.contains("1, re-run 2"), "{text}");
    let log = env.k(&["log", "--train", &t, "--json"]).ok();
    let events: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reruns: Vec<String> = events
        .iter()
        .filter(|e| e.get("rerun").is_some())
        .map(|e| {
            let s = |k: &str| e[k].to_string().trim_matches('"').to_string();
            format!(
                "{}.{} {} {}",
                s("step"),
                s("attempt"),
                s("rerun"),
                s("event")
            )
        })
        .collect();
    assert_eq!(
        reruns,
        [
            "a.1 1 started",
            "a.1 1 failure",
            "a.1 2 started",
            "a.1 2 success",
            "c.2 1 success"
        ]
    );
    let board = env.root.path().join("board");
    env.k(&["board", "--out", board.to_str().unwrap()]).ok();
    let html = std::fs::read_to_string(board.join("index.html")).unwrap();
    assert!(html.contains("#1: success (re-run 2)"), "board");
}

#[test]
fn racing_rerun_reports_of_the_same_state_make_one_tag() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "success").ok();
    let race = |state: &str| -> Vec<String> {
        thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let env = &env;
                    s.spawn(move || {
                        let cache = env.root.path().join(format!("cache-{state}-{i}"));
                        env.run_cmd(
                            env.cmd("locomotive")
                                .env("KONDUCTOR_CACHE_DIR", cache)
                                .args([
                                    "set-step-state",
                                    "--state-name",
                                    state,
                                    "--triggering-tag",
                                    "release=1.0=a.1",
                                ]),
                        )
                        .ok()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    for state in ["started", "failure"] {
        let outs = race(state);
        let created = outs.iter().filter(|o| o.contains(": created")).count();
        assert_eq!(created, 1, "{outs:?}");
        assert!(
            outs.iter()
                .all(|o| o.contains(&format!("release=1.0=a.1=rerun.1={state}"))),
            "{outs:?}"
        );
    }
    let reruns: Vec<String> = env
        .tags("1.0")
        .into_iter()
        .filter(|x| x.contains("=rerun."))
        .collect();
    assert_eq!(
        reruns,
        [
            "release=1.0=a.1=rerun.1=failure",
            "release=1.0=a.1=rerun.1=started"
        ]
    );
    assert_eq!(env.step_state(&t, "a"), "failure");
}

#[test]
fn ci_filters_never_start_a_job_for_rerun_tags() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "failure").ok();
    env.report("release=1.0=a.1", "started").ok();
    env.report("release=1.0=a.1", "success").ok();
    env.report("release=1.0=a.1", "failure").ok();
    let tags = env.tags("1.0");
    assert!(
        tags.contains(&"release=1.0=a.1=rerun.2=failure".to_string()),
        "{tags:?}"
    );
    let cc = CircleciFilter::new(Some(&[circleci_trigger_filter("a").unwrap()]), &[]).unwrap();
    let gh = GithubRefFilter::new(Some(&github_trigger_patterns("a").unwrap()[..]), &[]).unwrap();
    // The shipped examples' looser GitHub form, and an Argo sensor's regex on the ref.
    let shipped = GithubRefFilter::new(Some(&["release=*=a.*", "!release=*=a.*=*"]), &[]).unwrap();
    let argo = regex::Regex::new(r"^refs/tags/release=[0-9]+\.[0-9]+=a\.[0-9]+$").unwrap();
    for tag in &tags {
        let trigger = tag == "release=1.0=a.1";
        assert_eq!(cc.matches(tag), trigger, "circleci: {tag}");
        assert_eq!(gh.matches(tag), trigger, "github: {tag}");
        assert_eq!(shipped.matches(tag), trigger, "shipped github: {tag}");
        assert_eq!(
            argo.is_match(&format!("refs/tags/{tag}")),
            trigger,
            "argo: {tag}"
        );
    }
}

#[test]
fn log_lists_a_trigger_after_the_unblock_of_the_same_second() {
    const GATE_SDD: &str = "\
a: []
require-manual-unblock-before-prod: {needs: [a], manual: true}
deploy_serving_prod_k8s: [require-manual-unblock-before-prod]
done: {needs: [deploy_serving_prod_k8s], virtual: true}
";
    let env = Env::new(Kind::Daemon, GATE_SDD);
    let now = "1800000000";
    let k = |args: &[&str]| {
        env.run_cmd(env.cmd("konductor").env("KONDUCTOR_NOW", now).args(args))
            .ok()
    };
    let t = k(&["start", "--sha", &env.sha]).trim().to_string();
    k(&["tick", "--train", &t]);
    env.run_cmd(env.cmd("locomotive").env("KONDUCTOR_NOW", now).args([
        "set-step-state",
        "--state-name",
        "success",
        "--triggering-tag",
        "release=1.0=a.1",
    ]))
    .ok();
    k(&["tick", "--train", &t]);
    k(&[
        "unblock",
        "--train",
        &t,
        "--step",
        "require-manual-unblock-before-prod",
    ]);
    assert!(k(&["tick", "--train", &t]).contains("trigger release=1.0=deploy_serving_prod_k8s.1"));
    let log = k(&["log", "--train", &t]);
    let events: Vec<&str> = log
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        ["opened", "triggered", "success", "unblocked", "triggered"],
        "{log}"
    );
    assert!(
        log.lines().all(|l| l.starts_with("2027-01-15T08:00:00Z")),
        "{log}"
    );
}
