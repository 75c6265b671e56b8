//! Freezes, scheduled freeze windows, rollbacks and pins against a real git server: the
//! records `env=<environment>=<k>`, what the planner makes of them, and `konductor env`.

use std::path::Path;

use serde_json::Value;

use crate::harness::{publish_args, step_of, Env};
use crate::signing::keygen;
use crate::support::servers::Kind;

pub(crate) const SDD: &str = "\
build: []
deploy_staging: {needs: [build], environment: staging, deploy_tag: staging-k8s}
verify_staging: [deploy_staging]
done: {needs: [verify_staging], virtual: true}
";

/// Tick `train` and let the CI succeed every new trigger except those of `hold` steps.
pub(crate) fn drive(env: &Env, train: &str, hold: &[&str]) {
    for _ in 0..8 {
        env.tick(train);
        let mut moved = false;
        for tag in env.tags(train) {
            if tag.matches('=').count() != 2 || tag.ends_with("=superseded") {
                continue;
            }
            let step = tag.split('=').nth(2).unwrap().split('.').next().unwrap();
            let reported = env
                .tags(train)
                .iter()
                .any(|x| x.starts_with(&format!("{tag}=")));
            if hold.contains(&step) || reported {
                continue;
            }
            env.report(&tag, "started").ok();
            env.report(&tag, "success").ok();
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

fn records(env: &Env, e: &str) -> Vec<String> {
    env.server
        .tags()
        .into_iter()
        .filter(|t| t.starts_with(&format!("env={e}=")))
        .collect()
}

fn triggered(env: &Env, train: &str, step: &str) -> bool {
    env.tags(train)
        .iter()
        .any(|t| t.starts_with(&format!("release={train}={step}.")))
}

fn env_json(env: &Env) -> Value {
    serde_json::from_str(&env.k(&["env", "--json"]).ok()).expect("env json")
}

#[test]
fn a_freeze_holds_a_deploy_trigger_and_unfreeze_lets_it_go() {
    let env = Env::new(Kind::Daemon, SDD);
    let t = env.start();
    let out = env
        .k(&["freeze", "--env", "staging", "--reason", "release review"])
        .ok();
    assert!(out.contains("staging: frozen by Test Runner"), "{out}");
    assert_eq!(records(&env, "staging"), ["env=staging=1"]);
    drive(&env, &t, &[]);
    assert!(!triggered(&env, &t, "deploy_staging"));
    let s = env.status(&t);
    let d = step_of(&s, "deploy_staging");
    assert_eq!(d["state"], "frozen", "{s}");
    assert_eq!(
        d["reason"],
        "frozen: `staging` frozen by Test Runner <runner@example.com>: release review"
    );
    assert_eq!(s["state"], "running");
    let text = env.k(&["status", "--train", &t]).ok();
    assert!(text.contains("frozen by Test Runner"), "{text}");
    let list = env.k(&["status"]).ok();
    assert!(
        list.contains(&format!(
            "train {t}: `deploy_staging` frozen: `staging` frozen by Test Runner"
        )),
        "{list}"
    );
    // The board's staging card comes from the environments view.
    let out = env.root.path().join("board");
    env.k(&["board", "--out", out.to_str().unwrap()]).ok();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let card = html
        .split("id=\"env-staging\"")
        .nth(1)
        .expect("a staging card");
    let card = card.split("</article>").next().unwrap();
    assert!(card.contains("frozen by Test Runner"), "{card}");
    assert!(card.contains(&format!("waiting: {t}")), "{card}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("board.json")).unwrap()).unwrap();
    assert_eq!(json["environments"][0]["environment"], "staging");
    let view = env_json(&env);
    let st = &view["environments"][0];
    assert_eq!(st["environment"], "staging");
    assert_eq!(
        st["frozen"]["by"], "Test Runner <runner@example.com>",
        "{view}"
    );
    assert_eq!(st["waiting"][0], t.as_str(), "{view}");
    // Unfreezing records who and lets the next tick trigger.
    let out = env.k(&["unfreeze", "--env", "staging"]).ok();
    assert!(out.contains("unfrozen"), "{out}");
    assert_eq!(records(&env, "staging").len(), 2);
    env.tick(&t);
    assert!(triggered(&env, &t, "deploy_staging"));
    assert!(env_json(&env)["environments"][0]["frozen"].is_null());
    // The audit log lists both decisions, who made them and why, beside the trains' tags.
    let log = env.k(&["log"]).ok();
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|e| e.ends_with("frozen"))
        .collect();
    assert_eq!(events, ["frozen", "unfrozen"], "{log}");
    assert!(log.contains("reason: release review"), "{log}");
    // Unfreezing an open environment writes nothing.
    assert!(env
        .k(&["unfreeze", "--env", "staging"])
        .ok()
        .contains("not frozen"));
    assert_eq!(records(&env, "staging").len(), 2);
}

#[test]
fn a_deploy_in_flight_finishes_under_a_freeze() {
    let env = Env::new(Kind::Daemon, SDD);
    let t = env.start();
    drive(&env, &t, &["deploy_staging"]);
    assert_eq!(env.step_state(&t, "deploy_staging"), "triggered");
    env.k(&[
        "freeze", "--env", "staging", "--reason", "incident", "--until", "2h",
    ])
    .ok();
    env.report(&format!("release={t}=deploy_staging.1"), "started")
        .ok();
    env.report(&format!("release={t}=deploy_staging.1"), "success")
        .ok();
    drive(&env, &t, &[]);
    assert_eq!(env.status(&t)["state"], "succeeded");
}

#[test]
fn freeze_until_in_the_past_and_an_unknown_environment_write_nothing() {
    let env = Env::new(Kind::Daemon, SDD);
    env.start();
    env.k(&[
        "freeze",
        "--env",
        "staging",
        "--reason",
        "x",
        "--until",
        "2001-01-01T00:00:00Z",
    ])
    .fails(2, "`--until` 2001-01-01T00:00:00Z is not in the future");
    env.k(&["freeze", "--env", "stagin", "--reason", "x"])
        .fails(2, "unknown environment `stagin`; did you mean `staging`?");
    env.k(&["freeze", "--env", "staging", "--reason", ""])
        .fails(2, "`--reason` is empty");
    env.k(&["rollback", "--env", "nope", "--to", "1.0", "--reason", "x"])
        .fails(2, "unknown environment `nope`");
    assert!(records(&env, "staging").is_empty());
    // A malformed window is refused by validation, before any train uses it.
    let bad = env.root.path().join("bad.yaml");
    std::fs::write(
        &bad,
        SDD.replace(
            "deploy_tag: staging-k8s}",
            "deploy_tag: staging-k8s, freeze: [\"Fri 16:00 - Mon 08:00 Mars/Olympus\"]}",
        ),
    )
    .unwrap();
    env.k(&["validate", "--sdd", bad.to_str().unwrap()]).fails(
        2,
        "malformed freeze window `Fri 16:00 - Mon 08:00 Mars/Olympus` of step `deploy_staging`: `Mars/Olympus` is not a time zone",
    );
}

#[test]
fn a_scheduled_freeze_window_holds_deploys_inside_it() {
    let sdd = SDD.replace(
        "deploy_tag: staging-k8s}",
        "deploy_tag: staging-k8s, freeze: [\"Fri 16:00 - Mon 08:00 Europe/Berlin\"]}",
    );
    let env = Env::new(Kind::Daemon, &sdd);
    let t = env.start();
    // Build succeeds now; the deploy is decided at a Friday 17:00 in Berlin (16:00 UTC).
    env.tick(&t);
    env.report(&format!("release={t}=build.1"), "started").ok();
    env.report(&format!("release={t}=build.1"), "success").ok();
    let at = |now: &str, args: &[&str]| {
        env.run_cmd(env.cmd("konductor").env("KONDUCTOR_NOW", now).args(args))
            .ok()
    };
    let friday = "1799510400"; // 2027-01-08T16:00:00Z, a Friday
    at(friday, &["tick", "--train", &t]);
    assert!(!triggered(&env, &t, "deploy_staging"));
    let s: Value = serde_json::from_str(&at(friday, &["status", "--train", &t, "--json"])).unwrap();
    let d = step_of(&s, "deploy_staging");
    assert_eq!(d["state"], "frozen", "{s}");
    assert_eq!(d["until"], "2027-01-11T07:00:00Z", "{s}");
    let v: Value = serde_json::from_str(&at(friday, &["env", "--json"])).unwrap();
    assert_eq!(
        v["environments"][0]["frozen"]["until"],
        "2027-01-11T07:00:00Z"
    );
    let wednesday = "1799841600"; // 2027-01-12T12:00:00Z
    at(wednesday, &["tick", "--train", &t]);
    assert!(triggered(&env, &t, "deploy_staging"));
}

/// Deploy `train`'s staging step with real manifests (`replicas: n`).
pub(crate) fn deploy(env: &Env, train: &str, n: u32) {
    drive(env, train, &["deploy_staging", "verify_staging"]);
    let trig = format!("release={train}=deploy_staging.1");
    env.report(&trig, "started").ok();
    let dir = env.root.path().join(format!("manifests-{train}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.yaml"), format!("replicas: {n}\n")).unwrap();
    env.l(&publish_args(&dir, "staging-k8s", &trig)).ok();
    env.report(&trig, "success").ok();
    drive(env, train, &[]);
}

fn git(env: &Env, args: &[&str]) -> String {
    env.server.git(args).trim().to_string()
}

#[test]
fn a_rollback_publishes_the_old_tree_on_top_and_pins_until_unpin() {
    let env = Env::new(Kind::Daemon, SDD);
    let t1 = env.start();
    deploy(&env, &t1, 1);
    let tree1 = git(&env, &["rev-parse", "staging-k8s^{tree}"]);
    let t2 = env.start();
    deploy(&env, &t2, 2);
    let head2 = git(&env, &["rev-parse", "staging-k8s^{commit}"]);
    let out = env
        .k(&[
            "rollback",
            "--env",
            "staging",
            "--to",
            &t1,
            "--reason",
            "2.0 leaks memory",
        ])
        .ok();
    assert!(out.contains("rolled back to 1.0"), "{out}");
    // The old tree, the head as parent, the fields other readers take.
    assert_eq!(git(&env, &["rev-parse", "staging-k8s^{tree}"]), tree1);
    assert_eq!(git(&env, &["rev-parse", "staging-k8s^1"]), head2);
    let msg = git(&env, &["log", "-1", "--format=%B", "staging-k8s"]);
    for field in [
        "train: 1.0".to_string(),
        format!("source: {}", env.sha),
        "rollback: true".into(),
        "reason: 2.0 leaks memory".into(),
        "by: Test Runner <runner@example.com>".into(),
    ] {
        assert!(msg.contains(&field), "{field} in {msg}");
    }
    assert_eq!(records(&env, "staging"), ["env=staging=1"]);
    let view = env_json(&env);
    let st = &view["environments"][0];
    assert_eq!(st["current"]["train"], "1.0", "{view}");
    assert_eq!(st["current"]["rollback"], true);
    assert_eq!(st["pinned"]["train"], "1.0");
    assert_eq!(st["pinned"]["published"], true);
    assert_eq!(st["deploys"][0]["rollback"], true);
    assert_eq!(st["deploys"][1]["train"], "2.0");
    // A CI re-run of 2.0's deploy job cannot undo the rollback while pinned (2.0 is newer
    // than the 1.0 the tag holds now, so only the pin stops it): exit 2, nothing moved.
    let rollback_head = git(&env, &["rev-parse", "staging-k8s^{commit}"]);
    let dir = env.root.path().join("manifests-2.0");
    let trig = format!("release={t2}=deploy_staging.1");
    let out = env.l(&publish_args(&dir, "staging-k8s", &trig));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`staging` is pinned to 1.0 by Test Runner")
            && out.stderr.contains("nothing was published"),
        "{}",
        out.stderr
    );
    assert_eq!(
        git(&env, &["rev-parse", "staging-k8s^{commit}"]),
        rollback_head
    );
    // A later train waits for the unpin.
    let t3 = env.start();
    drive(&env, &t3, &[]);
    assert!(!triggered(&env, &t3, "deploy_staging"));
    let d = env.status(&t3);
    let d = step_of(&d, "deploy_staging");
    assert_eq!(d["state"], "frozen");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("pinned: `staging` was rolled back to 1.0 by Test Runner"),
        "{d}"
    );
    env.k(&["unpin", "--env", "staging"]).ok();
    env.tick(&t3);
    assert!(triggered(&env, &t3, "deploy_staging"));
}

#[test]
fn a_rollback_to_a_train_that_never_deployed_is_refused_and_writes_nothing() {
    let env = Env::new(Kind::Daemon, SDD);
    let t1 = env.start();
    deploy(&env, &t1, 1);
    let head = git(&env, &["rev-parse", "staging-k8s"]);
    env.k(&[
        "rollback", "--env", "staging", "--to", "7.0", "--reason", "x",
    ])
    .fails(
        2,
        "train 7.0 never deployed to `staging` (deploy tag `staging-k8s`); trains it ran: 1.0",
    );
    env.k(&["rollback", "--env", "staging", "--to", &t1, "--reason", "x"])
        .fails(2, "`staging` already runs train 1.0");
    assert_eq!(git(&env, &["rev-parse", "staging-k8s"]), head);
    assert!(records(&env, "staging").is_empty());
}

#[test]
fn with_allowed_signers_only_signed_freeze_records_hold_an_environment() {
    let env = Env::new(Kind::Daemon, SDD);
    let sdd_file = env.root.path().join("graph.yaml");
    std::fs::write(&sdd_file, SDD).unwrap();
    let sdd = sdd_file.to_str().unwrap();
    let keys = env.root.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (ops, ops_pub) = keygen(&keys, "ops");
    let allowed = keys.join("allowed_signers");
    std::fs::write(&allowed, format!("ops@example.com {ops_pub}\n")).unwrap();
    let run = |key: Option<&Path>, args: &[&str]| {
        let mut c = env.cmd("konductor");
        c.env("KONDUCTOR_ALLOWED_SIGNERS", &allowed);
        if let Some(k) = key {
            c.env("KONDUCTOR_SIGNING_KEY", k);
        }
        env.run_cmd(c.args(args))
    };
    let view = || -> Value {
        serde_json::from_str(&run(None, &["env", "--sdd", sdd, "--json"]).ok()).unwrap()
    };
    // An unsigned freeze is written (it takes its number) but holds nothing.
    run(
        None,
        &[
            "freeze", "--env", "staging", "--reason", "spoof", "--sdd", sdd,
        ],
    )
    .ok();
    assert!(view()["environments"][0]["frozen"].is_null(), "{}", view());
    run(
        Some(&ops),
        &[
            "freeze", "--env", "staging", "--reason", "signed", "--sdd", sdd,
        ],
    )
    .ok();
    assert_eq!(records(&env, "staging"), ["env=staging=1", "env=staging=2"]);
    let v = view();
    let f = &v["environments"][0]["frozen"];
    assert!(f["reason"].as_str().unwrap().ends_with(": signed"), "{v}");
    let rec = git(&env, &["cat-file", "-p", "env=staging=2"]);
    assert!(rec.contains("-----BEGIN SSH SIGNATURE-----"), "{rec}");
}

#[test]
fn retry_of_a_failed_deploy_is_refused_while_its_environment_is_frozen() {
    let env = Env::new(Kind::Daemon, SDD);
    let t = env.start();
    drive(&env, &t, &["deploy_staging"]);
    let trig = format!("release={t}=deploy_staging.1");
    env.report(&trig, "started").ok();
    env.report(&trig, "failure").ok();
    env.k(&["freeze", "--env", "staging", "--reason", "incident"])
        .ok();
    env.k(&["retry", "--train", &t, "--step", "deploy_staging"]).fails(
        2,
        "step `deploy_staging` of train 1.0 cannot be retried now: frozen: `staging` frozen by Test Runner <runner@example.com>: incident",
    );
    assert!(!env
        .tags(&t)
        .contains(&format!("release={t}=deploy_staging.2")));
    env.k(&["unfreeze", "--env", "staging"]).ok();
    env.k(&["retry", "--train", &t, "--step", "deploy_staging"])
        .ok();
    assert!(env
        .tags(&t)
        .contains(&format!("release={t}=deploy_staging.2")));
}
