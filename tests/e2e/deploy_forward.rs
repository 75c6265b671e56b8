//! `locomotive publish-manifests` defends the environment (deploys only move forward;
//! the deploy tag from the step's `deploy_tag`), `konductor deploy-record` reads back what
//! a train deployed, and `konductor retry` refuses a superseded step: against real git
//! servers.

use crate::environments::{drive, ENV_SDD};
use crate::harness::{Env, SMALL_SDD};
use crate::support::servers::Kind;

fn manifests(env: &Env, name: &str, body: &str) -> std::path::PathBuf {
    let dir = env.root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), body).unwrap();
    dir
}

fn publish(
    env: &Env,
    dir: &std::path::Path,
    tag: Option<&str>,
    trigger: &str,
) -> crate::harness::Out {
    let mut args = vec!["publish-manifests", "--dir", dir.to_str().unwrap()];
    if let Some(t) = tag {
        args.extend(["--tag", t]);
    }
    args.extend(["--triggering-tag", trigger]);
    env.l(&args)
}

fn head(env: &Env, tag: &str) -> String {
    env.server
        .git(&["rev-parse", &format!("refs/tags/{tag}")])
        .trim()
        .to_string()
}

fn chain_len(env: &Env, tag: &str) -> usize {
    env.server
        .git(&["rev-list", "--count", &format!("refs/tags/{tag}")])
        .trim()
        .parse()
        .unwrap()
}

/// Before: `publish-manifests` of train 1.0 after train 2.0 moved `staging-k8s` back to
/// train 1.0 with exit 0.
#[test]
fn an_older_train_cannot_move_a_deploy_tag_back() {
    for kind in [Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t1 = env.start();
        let t2 = env.start();
        env.tick(&t1);
        env.tick(&t2);
        let m2 = manifests(&env, "m2", "train: 2\n");
        publish(&env, &m2, Some("staging-k8s"), "release=2.0=a.1").ok();
        let at2 = head(&env, "staging-k8s");
        let m1 = manifests(&env, "m1", "train: 1\n");
        publish(&env, &m1, Some("staging-k8s"), "release=1.0=a.1").fails(
            2,
            "train 1.0 is older than train 2.0, which `staging-k8s` holds",
        );
        assert_eq!(head(&env, "staging-k8s"), at2, "the tag did not move");
        assert_eq!(chain_len(&env, "staging-k8s"), 1);
        // The same train with the same manifests again (a CI re-run): nothing published.
        let out = publish(&env, &m2, Some("staging-k8s"), "release=2.0=a.1").ok();
        assert!(out.contains("nothing published"), "{out}");
        assert_eq!(head(&env, "staging-k8s"), at2);
        // The same train with other manifests: a new deploy commit of that train.
        let m2b = manifests(&env, "m2b", "train: 2b\n");
        publish(&env, &m2b, Some("staging-k8s"), "release=2.0=a.1").ok();
        assert_eq!(chain_len(&env, "staging-k8s"), 2);
        // A hotfix of 1 is older than 2.0 too; with no environment it holds no claim.
        let h = env
            .k(&["start", "--sha", &env.sha, "--hotfix", "1"])
            .ok()
            .trim()
            .to_string();
        env.tick(&h);
        publish(&env, &m1, Some("staging-k8s"), &format!("release={h}=a.1"))
            .fails(2, "train 1.1 is older than train 2.0");
        assert_eq!(chain_len(&env, "staging-k8s"), 2);
        // A newer train moves it on.
        let t3 = env.start();
        env.tick(&t3);
        publish(&env, &m1, Some("staging-k8s"), "release=3.0=a.1").ok();
        assert_eq!(chain_len(&env, "staging-k8s"), 3);
    }
}

/// Before: `--tag` was required, so a deploy job had to repeat the graph's `deploy_tag`.
#[test]
fn publish_takes_the_deploy_tag_from_the_steps_deploy_tag() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    drive(&env, &t1, &["deploy_staging"]);
    let m = manifests(&env, "m", "x: 1\n");
    let out = publish(&env, &m, None, "release=1.0=deploy_staging.1").ok();
    assert!(out.starts_with("staging-k8s: (new) -> "), "{out}");
    let body = env.server.git(&["log", "-1", "--format=%B", "staging-k8s"]);
    assert!(body.contains("train: 1.0"), "{body}");
    // A step without `deploy_tag`, and no `--tag`: refused, nothing written.
    let before = env.server.tags();
    publish(&env, &m, None, "release=1.0=build.1")
        .fails(2, "step `build` of train 1.0 has no `deploy_tag`");
    assert_eq!(env.server.tags(), before);
}

/// The hotfix rule of docs/sdd.md: 41.1 deploys to staging where 42.0 sits, because the
/// planner let it through (it holds staging's newest claim); a plain older train never.
/// `deploy-record` gives each train's own deploy commit, not the moving tag's.
#[test]
fn a_hotfix_holding_the_claim_may_publish_past_a_newer_train_and_records_stay_per_train() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    drive(&env, &t1, &["deploy_staging"]);
    let m1 = manifests(&env, "m1", "train: 1\n");
    publish(&env, &m1, None, "release=1.0=deploy_staging.1").ok();
    let rec1 = head(&env, "staging-k8s");
    env.report("release=1.0=deploy_staging.1", "started").ok();
    env.report("release=1.0=deploy_staging.1", "success").ok();
    drive(&env, &t1, &[]);
    let t2 = env.start();
    drive(&env, &t2, &["deploy_staging"]);
    let m2 = manifests(&env, "m2", "train: 2\n");
    publish(&env, &m2, None, "release=2.0=deploy_staging.1").ok();
    let rec2 = head(&env, "staging-k8s");
    env.report("release=2.0=deploy_staging.1", "started").ok();
    env.report("release=2.0=deploy_staging.1", "success").ok();
    drive(&env, &t2, &["verify_staging"]);
    // Train 1.0's old deploy job, re-run: refused.
    publish(&env, &m1, None, "release=1.0=deploy_staging.1")
        .fails(2, "train 1.0 is older than train 2.0");
    let h = env
        .k(&["start", "--sha", &env.sha, "--hotfix", "1"])
        .ok()
        .trim()
        .to_string();
    drive(&env, &h, &["deploy_staging"]);
    assert_eq!(env.step_state(&h, "deploy_staging"), "triggered");
    let mh = manifests(&env, "mh", "train: 1.1\n");
    publish(&env, &mh, None, "release=1.1=deploy_staging.1").ok();
    let rech = head(&env, "staging-k8s");
    assert_eq!(chain_len(&env, "staging-k8s"), 3);

    // deploy-record: each train's own commit, whatever the tag holds now.
    for (train, want) in [("1.0", &rec1), ("2.0", &rec2), ("1.1", &rech)] {
        let out = env
            .k(&["deploy-record", "--env", "staging", "--train", train])
            .ok();
        assert_eq!(out.trim(), want.as_str(), "train {train}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &env.k(&[
            "deploy-record",
            "--tag",
            "staging-k8s",
            "--train",
            "2.0",
            "--json",
        ])
        .ok(),
    )
    .unwrap();
    assert_eq!(json["commit"], rec2.as_str());
    assert_eq!(json["train"], "2.0");
    assert_eq!(json["trigger"], "release=2.0=deploy_staging.1");
    assert_eq!(json["source"], env.sha.as_str());
    assert_eq!(json["rollback"], false);
    env.k(&["deploy-record", "--env", "stagign", "--train", "2.0"])
        .fails(2, "unknown environment `stagign`")
        .fails(2, "did you mean `staging`?");
    env.k(&["deploy-record", "--env", "production", "--train", "2.0"])
        .fails(2, "train 2.0 has no deploy commit under `k8s-production`");
}

/// A superseded deploy step never runs: `retry` says so instead of "not failed".
#[test]
fn retry_of_a_superseded_deploy_step_is_refused_and_says_why() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    let t2 = env.start();
    drive(&env, &t2, &["verify_staging"]);
    drive(&env, &t1, &[]);
    assert_eq!(env.step_state(&t1, "deploy_staging"), "superseded");
    let before = env.server.tags();
    env.k(&["retry", "--train", &t1, "--step", "deploy_staging"])
        .fails(
            2,
            "step `deploy_staging` of train 1.0 cannot be retried: it is superseded: 2.0 deployed to `staging`",
        );
    env.k(&["retry", "--train", &t1, "--step", "verify_staging"])
        .fails(2, "cannot be retried: it is superseded");
    assert_eq!(env.server.tags(), before, "nothing written");
}
