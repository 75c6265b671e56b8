//! Environments against a real git server: forward only, one deploy at a time with the
//! newest first, hotfixes past a newer train on staging, and racing ticks.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;

use crate::harness::{step_of, Env};
use crate::support::servers::Kind;

pub(crate) const ENV_SDD: &str = "\
build: []
deploy_staging: {needs: [build], environment: staging, deploy_tag: staging-k8s}
verify_staging: [deploy_staging]
deploy_prod: {needs: [verify_staging], environment: production, deploy_tag: k8s-production}
done: {needs: [deploy_prod], virtual: true}
";

/// Tick `train` and let the CI succeed every new trigger, except those of `hold` steps
/// (left triggered), until nothing more happens.
pub(crate) fn drive(env: &Env, train: &str, hold: &[&str]) {
    for _ in 0..12 {
        let out = env.tick(train);
        let mut moved = false;
        for tag in env.tags(train) {
            if tag.matches('=').count() != 2 || tag.ends_with("=superseded") {
                continue;
            }
            let step = tag.split('=').nth(2).unwrap().split('.').next().unwrap();
            if hold.contains(&step)
                || env
                    .tags(train)
                    .iter()
                    .any(|x| x.starts_with(&format!("{tag}=")))
            {
                continue;
            }
            env.report(&tag, "started").ok();
            env.report(&tag, "success").ok();
            moved = true;
        }
        if !moved && out.contains("nothing to do") {
            return;
        }
    }
}

pub(crate) fn claims(env: &Env, e: &str) -> Vec<String> {
    let mut c: Vec<String> = env
        .server
        .tags()
        .into_iter()
        .filter(|t| t.starts_with(&format!("env={e}.")))
        .collect();
    c.sort_by_key(|t| t.rsplit('.').next().unwrap().parse::<u32>().unwrap());
    c
}

#[test]
fn an_older_train_is_superseded_at_staging_once_a_newer_one_deployed() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    let t2 = env.start();
    drive(&env, &t2, &["verify_staging"]);
    assert_eq!(env.step_state(&t2, "deploy_staging"), "success");
    drive(&env, &t1, &[]);
    let s = env.status(&t1);
    assert_eq!(s["state"], "superseded", "{s}");
    let d = step_of(&s, "deploy_staging");
    assert_eq!(d["state"], "superseded");
    assert_eq!(d["reason"], "superseded: 2.0 deployed to `staging`");
    assert_eq!(step_of(&s, "verify_staging")["state"], "superseded");
    let tags = env.tags(&t1);
    assert!(
        tags.contains(&"release=1.0=deploy_staging=superseded".to_string()),
        "{tags:?}"
    );
    assert!(
        !tags
            .iter()
            .any(|t| t.starts_with("release=1.0=deploy_staging.")),
        "{tags:?}"
    );
    assert_eq!(claims(&env, "staging"), ["env=staging.1"]);
    let log = env.k(&["log", "--train", &t1]).ok();
    assert!(log.contains("superseded"), "{log}");
    let text = env.k(&["status", "--train", &t1]).ok();
    assert!(
        text.contains("superseded: 2.0 deployed to `staging`"),
        "{text}"
    );
}

#[test]
fn a_ready_train_waits_while_another_deploys_then_the_newest_goes() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    let t2 = env.start();
    let t3 = env.start();
    drive(&env, &t1, &["deploy_staging"]);
    assert_eq!(env.step_state(&t1, "deploy_staging"), "triggered");
    drive(&env, &t2, &["deploy_staging"]);
    drive(&env, &t3, &["deploy_staging"]);
    for t in [&t2, &t3] {
        let s = env.status(t);
        let d = step_of(&s, "deploy_staging");
        assert_eq!(d["state"], "waiting", "{s}");
        assert_eq!(d["reason"], "waiting for staging: 1.0 is deploying");
        assert_eq!(s["state"], "running");
    }
    env.report("release=1.0=deploy_staging.1", "started").ok();
    env.report("release=1.0=deploy_staging.1", "success").ok();
    // One tick over every train: 3.0 claims and goes; 2.0 waits for it, then is superseded.
    let out = env.k(&["tick"]).ok();
    assert!(out.contains("release=3.0=deploy_staging.1"), "{out}");
    assert!(!out.contains("release=2.0=deploy_staging.1"), "{out}");
    env.k(&["tick"]).ok();
    assert_eq!(env.status(&t2)["state"], "superseded");
    assert!(!env
        .tags(&t2)
        .iter()
        .any(|t| t.starts_with("release=2.0=deploy_staging.")));
    assert_eq!(claims(&env, "staging"), ["env=staging.1", "env=staging.2"]);
}

#[test]
fn a_hotfix_reaches_production_past_a_newer_train_on_staging() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    drive(&env, &t1, &[]);
    assert_eq!(env.status(&t1)["state"], "succeeded");
    let t2 = env.start();
    // 2.0 sits on staging: deployed there, its verification never ends.
    drive(&env, &t2, &["verify_staging"]);
    assert_eq!(env.step_state(&t2, "deploy_staging"), "success");
    let h = env
        .k(&["start", "--sha", &env.sha, "--hotfix", "1"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(h, "1.1");
    drive(&env, &h, &[]);
    let s = env.status(&h);
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(
        claims(&env, "production"),
        ["env=production.1", "env=production.2"]
    );
    // Once 2.0 is in production, the next hotfix of 1 is superseded.
    env.report("release=2.0=verify_staging.1", "started").ok();
    env.report("release=2.0=verify_staging.1", "success").ok();
    drive(&env, &t2, &[]);
    assert_eq!(env.status(&t2)["state"], "succeeded");
    let h2 = env
        .k(&["start", "--sha", &env.sha, "--hotfix", "1"])
        .ok()
        .trim()
        .to_string();
    drive(&env, &h2, &[]);
    let s = env.status(&h2);
    assert_eq!(s["state"], "superseded", "{s}");
    assert_eq!(
        step_of(&s, "deploy_staging")["reason"],
        "superseded: 2.0 deployed to `staging`"
    );
}

/// Four tick loops over every train, a CI that fails a third of the deploys at random:
/// no deploy step triggered twice, claims in train order per environment (numbers never
/// go down), never a claim before the previous holder's deploy ended, and every train
/// ends succeeded, failed or superseded as the tags say it must.
#[test]
fn racing_ticks_over_many_trains_deploy_once_in_order_one_at_a_time() {
    const TRAINS: u32 = 12;
    let env = Env::new(Kind::Daemon, ENV_SDD);
    for _ in 0..TRAINS {
        env.start();
    }
    let seed: u64 = std::env::var("ENV_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        for i in 0..4 {
            let env = &env;
            let stop = &stop;
            s.spawn(move || {
                let cache = env.root.path().join(format!("cache-{i}"));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = env.run_cmd(
                        env.cmd("konductor")
                            .env("KONDUCTOR_CACHE_DIR", &cache)
                            .args(["tick"]),
                    );
                    assert_eq!(out.code, 0, "{out:?}");
                }
            });
        }
        // The CI.
        let env = &env;
        let mut rng = seed;
        let mut done = BTreeSet::new();
        for _ in 0..600 {
            let all = env.server.tags();
            for tag in all.iter().filter(|t| {
                t.starts_with("release=")
                    && t.matches('=').count() == 2
                    && !t.ends_with("=superseded")
            }) {
                if done.insert(tag.clone()) {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let fail = tag.contains("deploy") && (rng >> 33).is_multiple_of(3);
                    env.report(tag, "started").ok();
                    env.report(tag, if fail { "failure" } else { "success" })
                        .ok();
                }
            }
            let st: serde_json::Value =
                serde_json::from_str(&env.k(&["status", "--json"]).ok()).unwrap();
            let finished = st["trains"].as_array().unwrap().iter().all(|t| {
                matches!(
                    t["state"].as_str(),
                    Some("succeeded" | "failed" | "superseded")
                )
            });
            if finished && st["trains"].as_array().unwrap().len() == TRAINS as usize {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let all = env.server.tags();
    // No deploy triggered twice (no retries in the graph, so job 1 only).
    for tag in &all {
        if tag.contains("=deploy_")
            && tag.matches('=').count() == 2
            && !tag.ends_with("=superseded")
        {
            assert!(tag.ends_with(".1"), "a second deploy trigger: {tag}");
        }
    }
    for (e, step) in [("staging", "deploy_staging"), ("production", "deploy_prod")] {
        let cs = claims(&env, e);
        let holders: Vec<(u32, u32)> = cs
            .iter()
            .map(|c| {
                let msg = env.server.git(&["tag", "-l", "--format=%(contents)", c]);
                let t = msg
                    .lines()
                    .find_map(|l| l.strip_prefix("train: "))
                    .unwrap()
                    .trim()
                    .to_string();
                let (n, p) = t.split_once('.').unwrap();
                (n.parse().unwrap(), p.parse().unwrap())
            })
            .collect();
        assert!(
            holders.windows(2).all(|w| w[0] < w[1]),
            "{e} went backwards: {holders:?}"
        );
        // Every deploy trigger has a claim of its train.
        for tag in all.iter().filter(|t| t.ends_with(&format!("={step}.1"))) {
            let t = tag
                .trim_start_matches("release=")
                .split('=')
                .next()
                .unwrap();
            let (n, p) = t.split_once('.').unwrap();
            assert!(
                holders.contains(&(n.parse().unwrap(), p.parse().unwrap())),
                "{tag} without a claim"
            );
        }
    }
    // The final states, as the tags say they must be.
    let st: serde_json::Value = serde_json::from_str(&env.k(&["status", "--json"]).ok()).unwrap();
    let mut seen = BTreeMap::new();
    for t in st["trains"].as_array().unwrap() {
        let id = t["train"].as_str().unwrap().to_string();
        let has = |suffix: &str| all.contains(&format!("release={id}={suffix}"));
        let failed = has("deploy_staging.1=failure") || has("deploy_prod.1=failure");
        let superseded = has("deploy_staging=superseded") || has("deploy_prod=superseded");
        let expect = if has("deploy_prod.1=success") {
            "succeeded"
        } else if failed {
            "failed"
        } else if superseded {
            "superseded"
        } else {
            "unfinished"
        };
        assert_eq!(t["state"], expect, "train {id}");
        seen.insert(id, expect);
    }
    assert_eq!(seen.len(), TRAINS as usize);
}
