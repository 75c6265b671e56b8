//! `konductor metrics` against a real git server: trains run with a fixed clock
//! (`KONDUCTOR_NOW`), a deploy, a failure after a deploy, a rollback commit under the deploy
//! tag and a failed deploy; the figures must be what the test did.

use serde_json::Value;

use crate::harness::{publish_args, Env, Out};
use crate::support::servers::{git_stdin, Kind};

const METRICS_SDD: &str = "\
build: []
gate: {needs: [build], manual: true}
deploy_prod: {needs: [gate], environment: production, deploy_tag: k8s-production}
verify: [deploy_prod]
done: {needs: [verify], virtual: true}
";

/// The committer time of the test repository's commits (`GIT_DATE` of the support code).
const COMMITTED: i64 = 1_704_067_200;
const DAY: i64 = 86_400;

fn at(env: &Env, now: i64, bin: &str, args: &[&str]) -> Out {
    env.run_cmd(
        env.cmd(bin)
            .env("KONDUCTOR_NOW", now.to_string())
            .args(args),
    )
}

fn report(env: &Env, now: i64, tag: &str, state: &str) {
    let sha = env.sha.clone();
    at(
        env,
        now,
        "locomotive",
        &[
            "set-step-state",
            "--state-name",
            state,
            "--triggering-tag",
            tag,
            "--sha",
            &sha,
        ],
    )
    .ok();
}

/// Run one train from `t0`: build 0→60 s, gate unblocked at 90 s, deploy triggered by the
/// tick at 100 s, published at 110 s and ended at 160 s with `deploy`, verify triggered at
/// 200 s and ended at 260 s with `verify` (nothing after a failed deploy).
fn train(env: &Env, t0: i64, deploy: &str, verify: &str) -> String {
    let t = at(env, t0, "konductor", &["start", "--sha", &env.sha])
        .ok()
        .trim()
        .to_string();
    let tick = |now: i64| at(env, now, "konductor", &["tick", "--train", &t]).ok();
    tick(t0);
    let build = format!("release={t}=build.1");
    report(env, t0 + 10, &build, "started");
    report(env, t0 + 60, &build, "success");
    tick(t0 + 70);
    at(
        env,
        t0 + 90,
        "konductor",
        &["unblock", "--train", &t, "--step", "gate", "--reason", "go"],
    )
    .ok();
    let out = tick(t0 + 100);
    let dep = format!("release={t}=deploy_prod.1");
    assert!(out.contains(&dep), "{out}");
    report(env, t0 + 105, &dep, "started");
    let dir = env.root.path().join(format!("manifests-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), format!("train: {t}\n")).unwrap();
    at(
        env,
        t0 + 110,
        "locomotive",
        &publish_args(&dir, "k8s-production", &dep),
    )
    .ok();
    report(env, t0 + 160, &dep, deploy);
    if deploy != "success" {
        return t;
    }
    let out = tick(t0 + 200);
    let ver = format!("release={t}=verify.1");
    assert!(out.contains(&ver), "{out}");
    report(env, t0 + 205, &ver, "started");
    report(env, t0 + 260, &ver, verify);
    tick(t0 + 300);
    t
}

/// A rollback as `konductor rollback` records it: a new deploy commit under the deploy
/// tag, parent the current one, tree of an earlier one, `rollback: true` in its message.
fn rollback(env: &Env, now: i64, to_train: &str) {
    let cur = env.server.git(&["rev-parse", "k8s-production^{commit}"]);
    let cur = cur.trim();
    let earlier = env.server.git(&["rev-parse", &format!("{cur}~1^{{tree}}")]);
    let raw = format!(
        "tree {}\nparent {cur}\nauthor R <r@example.com> {now} +0000\ncommitter R <r@example.com> {now} +0000\n\nrollback k8s-production to train {to_train}\n\ntrain: {to_train}\nsource: {}\nrollback: true\nreason: verify failed\nby: R <r@example.com>\n",
        earlier.trim(),
        env.sha
    );
    let id = git_stdin(
        &env.server.bare,
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        raw.as_bytes(),
    );
    env.server
        .git(&["update-ref", "refs/tags/k8s-production", &id, cur]);
}

#[test]
fn metrics_count_deploys_failures_rollbacks_and_restores_from_the_tags() {
    let env = Env::new(Kind::Daemon, METRICS_SDD);
    let t0 = COMMITTED + 3_600;
    let t1 = t0 + DAY;
    let t2 = t0 + 2 * DAY;
    let now = t2 + 1_000;
    train(&env, t0, "success", "success");
    train(&env, t1, "success", "failure");
    rollback(&env, t1 + 3_600, "1.0");
    train(&env, t2, "failure", "");

    let out = at(
        &env,
        now,
        "konductor",
        &["metrics", "--json", "--since", "30d"],
    )
    .ok();
    let m: Value = serde_json::from_str(&out).expect("metrics json");
    assert_eq!(m["env"], "production");
    assert_eq!(m["window_secs"], 30 * DAY);
    assert_eq!(m["trains_read"], 3);
    assert_eq!(m["trains"]["succeeded"], 1, "{m}");
    assert_eq!(m["trains"]["failed"], 2, "{m}");
    let d = &m["dora"];
    assert_eq!(d["deploys"], 2, "{d}");
    assert_eq!(d["rollbacks"], 1);
    assert!((d["deploys_per_day"].as_f64().unwrap() - 2.0 / 30.0).abs() < 1e-9);
    // Lead time: the trains' commit → their deploy's success.
    let leads: Vec<i64> = d["deploy_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["lead_time_secs"].as_i64().unwrap())
        .collect();
    assert_eq!(leads, [t0 + 160 - COMMITTED, t1 + 160 - COMMITTED]);
    assert_eq!(
        d["lead_time"]["median_secs"].as_f64(),
        Some(((t0 + t1 + 320 - 2 * COMMITTED) / 2) as f64)
    );
    // Train 2's verify failed after its deploy: one failed change of two.
    assert_eq!(d["failed_deploys"], 1);
    assert_eq!(d["change_failure_rate"].as_f64(), Some(0.5));
    assert_eq!(d["deploy_list"][1]["failed_by"], "failure");
    assert_eq!(d["deploy_list"][1]["failed_step"], "verify");
    // Its failure was restored by the rollback; train 3's failed deploy is still open.
    let inc = d["incidents"].as_array().unwrap();
    assert_eq!(inc.len(), 2, "{d}");
    assert_eq!(inc[0]["step"], "verify");
    assert_eq!(inc[0]["restored_by"], "rollback");
    assert_eq!(inc[0]["secs"], 3_600 - 260);
    assert_eq!(inc[1]["train"], "3.0");
    assert_eq!(inc[1]["step"], "deploy_prod");
    assert!(inc[1]["restored_at"].is_null());
    assert_eq!(d["time_to_restore"]["count"], 1);
    // Waits: the gate from build's success (60 s) to the unblock (90 s); the environment
    // from the unblock to the deploy's trigger (100 s).
    for w in m["gate_waits"].as_array().unwrap() {
        assert_eq!(w["secs"], 30, "{w}");
    }
    assert_eq!(m["gate_waits"].as_array().unwrap().len(), 3);
    assert_eq!(m["env_wait_histograms"]["production"]["count"], 3);
    assert_eq!(m["env_wait_histograms"]["production"]["sum"], 30.0);
    // Step durations from the trigger: build 60 s (triggered at 0).
    let builds: Vec<&Value> = m["step_durations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "build")
        .collect();
    assert_eq!(builds.len(), 3);
    assert!(builds.iter().all(|s| s["secs"] == 60), "{builds:?}");

    // A window that ends before train 2 deployed holds train 1's deploy only.
    let early = at(&env, t0 + 1_000, "konductor", &["metrics", "--json"]).ok();
    let e: Value = serde_json::from_str(&early).unwrap();
    assert_eq!(e["dora"]["deploys"], 1, "{e}");
    assert_eq!(e["dora"]["change_failure_rate"].as_f64(), Some(0.0));

    let text = at(&env, now, "konductor", &["metrics"]).ok();
    assert!(text.contains("deployment frequency   2 deploys"), "{text}");
    assert!(text.contains("change failure rate    50%"), "{text}");
    assert!(text.contains("open since"), "{text}");

    // Bad input: exit 2, a message naming the problem, nothing read or written.
    let tags = env.server.tags();
    at(&env, now, "konductor", &["metrics", "--env", "staging"])
        .fails(2, "unknown environment `staging`: no train's graph deploys to it; the environments are `production`");
    at(&env, now, "konductor", &["metrics", "--since", "0d"])
        .fails(2, "in `--since`: invalid window `0d`");
    at(&env, now, "konductor", &["metrics", "--since", "month"])
        .fails(2, "in `--since`: invalid window `month`");
    assert_eq!(env.server.tags(), tags);
}
