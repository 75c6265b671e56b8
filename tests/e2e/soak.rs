//! `make soak`: 4 concurrent tick loops and a fake CI that reports at random through
//! locomotive, over many trains on a real git server over HTTP. Ignored by `make test`;
//! run with `SOAK_TRAINS=200 SOAK_SECONDS=1200 cargo test --release -p konductor-tests
//! --test e2e soak -- --ignored --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::env_model::EnvSpec;
use crate::harness::{step_of, Env};
use crate::support::servers::Kind;

const SOAK_SDD: &str = "\
build: {needs: [], retries: 2, trigger_timeout: 4s}
test: {needs: [], retries: 2, trigger_timeout: 4s}
lint: {needs: [], trigger_timeout: 4s}
deploy: {needs: [build, test, lint], retries: 1, trigger_timeout: 4s, environment: staging, deploy_tag: staging-k8s}
verify: {needs: [deploy], retries: 1, trigger_timeout: 4s}
deploy_prod: {needs: [verify], retries: 1, trigger_timeout: 4s, environment: production, deploy_tag: k8s-production}
done: {needs: [deploy_prod], virtual: true}
";
const RETRIES: [(&str, u32); 6] = [
    ("build", 2),
    ("test", 2),
    ("lint", 0),
    ("deploy", 1),
    ("verify", 1),
    ("deploy_prod", 1),
];
const NEEDS: [(&str, &[&str]); 6] = [
    ("build", &[]),
    ("test", &[]),
    ("lint", &[]),
    ("deploy", &["build", "test", "lint"]),
    ("verify", &["deploy"]),
    ("deploy_prod", &["verify"]),
];
/// The environments of [`SOAK_SDD`]: the CI's deploy jobs publish with
/// `locomotive publish-manifests`, and `env_model` checks them.
const SOAK_ENVS: [EnvSpec; 2] = [
    EnvSpec {
        env: "staging",
        step: "deploy",
        tag: "staging-k8s",
    },
    EnvSpec {
        env: "production",
        step: "deploy_prod",
        tag: "k8s-production",
    },
];
/// The model's copy of the documented rule (docs/sdd.md, `trigger_timeout`), kept apart
/// from the planner's constant on purpose: a step whose latest 4 triggers went unanswered
/// has failed.
const UNANSWERED_GIVE_UP: usize = 4;

/// A number from the environment, decimal or `0x` hex; the default when unset. A value
/// that does not parse stops the soak rather than silently running another experiment.
fn env_num(name: &str, default: u64) -> u64 {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    let v = v.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{name}={v}: not a number ({e})"))
}

/// A tiny deterministic PRNG (xorshift), so a run can be replayed with SOAK_SEED.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
#[ignore = "load test: run with `make soak`"]
fn soak() {
    let trains = env_num("SOAK_TRAINS", 200) as usize;
    let batch = env_num("SOAK_BATCH", 10) as usize;
    let bound = Duration::from_secs(env_num("SOAK_SECONDS", 1200));
    let seed = env_num("SOAK_SEED", 0x5eed_c0de);
    // The fake CI: this share of triggers is never answered (a lost webhook), and this
    // share of the answered ones fails.
    let drop_pct = env_num("SOAK_DROP_PCT", 5).min(100);
    let fail_pct = env_num("SOAK_FAIL_PCT", 20).min(100);
    let env = Env::new(Kind::Http, SOAK_SDD);
    let t0 = Instant::now();
    println!(
        "soak: {trains} trains in batches of {batch} on {} (seed {seed:#x}, bound {}s, {drop_pct}% of triggers dropped, {fail_pct}% of the rest failed)",
        env.server.url,
        bound.as_secs()
    );
    let stop = AtomicBool::new(false);
    // What the CI decided for each trigger: Some(true) success, Some(false) failure, None dropped.
    let decided: Mutex<BTreeMap<String, Option<bool>>> = Mutex::new(BTreeMap::new());
    let tick_errors = Mutex::new(Vec::new());
    // Publishes `locomotive publish-manifests` refused (none expected: the claims
    // serialise deploys in train order).
    let refused: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let ticks = Mutex::new(0u64);
    let queue: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let seen: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let horizon = (2 * batch + 5).to_string();
    let mut opened = 0;
    let mut early = false;
    thread::scope(|s| {
        for i in 0..4 {
            let (env, stop, tick_errors, ticks, horizon) =
                (&env, &stop, &tick_errors, &ticks, &horizon);
            s.spawn(move || {
                let cache = env.root.path().join(format!("tick-{i}"));
                while !stop.load(Ordering::Relaxed) {
                    let out = env.run_cmd(
                        env.cmd("konductor")
                            .env("KONDUCTOR_CACHE_DIR", &cache)
                            .args(["tick", "--horizon", horizon]),
                    );
                    *ticks.lock().unwrap() += 1;
                    if out.code != 0 {
                        tick_errors.lock().unwrap().push(out.stderr);
                    }
                }
            });
        }
        // The fake CI: 4 workers take new trigger tags and report at random.
        for w in 0..4u64 {
            let (env, stop, queue, decided, refused) = (&env, &stop, &queue, &decided, &refused);
            s.spawn(move || {
                let mut rng = Rng(seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                while !stop.load(Ordering::Relaxed) {
                    let Some(tag) = queue.lock().unwrap().pop() else {
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    if rng.next() % 100 < drop_pct {
                        decided.lock().unwrap().insert(tag, None); // the webhook got lost
                        continue;
                    }
                    let mut ok = rng.next() % 100 >= fail_pct;
                    let started = env.report(&tag, "started");
                    let step = tag.split('=').nth(2).unwrap_or("").split('.').next();
                    if ok && matches!(step, Some("deploy" | "deploy_prod")) {
                        // The deploy job: render the train's manifests (the same for every
                        // job of the train, as a real render is) and publish them under the
                        // step's deploy tag. A re-triggered job publishes nothing new.
                        let dir = env.root.path().join(format!("m-{}", tag.replace('=', "-")));
                        let train = tag.split('=').nth(1).unwrap_or("");
                        std::fs::create_dir_all(&dir).unwrap();
                        std::fs::write(dir.join("app.yaml"), format!("train: {train}\n")).unwrap();
                        let out = env.l(&[
                            "publish-manifests",
                            "--dir",
                            dir.to_str().unwrap(),
                            "--triggering-tag",
                            &tag,
                        ]);
                        if out.code != 0 {
                            refused
                                .lock()
                                .unwrap()
                                .push(format!("{tag}: exit {}: {}", out.code, out.stderr));
                            ok = false;
                        }
                    }
                    let end = env.report(&tag, if ok { "success" } else { "failure" });
                    assert_eq!(started.code, 0, "{started:?}");
                    assert_eq!(end.code, 0, "{end:?}");
                    decided.lock().unwrap().insert(tag, Some(ok));
                }
            });
        }
        // Dispatcher and completion check. Trains are opened in batches, as over a working
        // day: the next batch (4 racing starts) once the previous one has settled.
        loop {
            if opened < trains && all_final(&env, opened) {
                let n = batch.min(trains - opened);
                thread::scope(|s2| {
                    for w in 0..4 {
                        let env = &env;
                        s2.spawn(move || {
                            let cache = env.root.path().join(format!("start-{w}"));
                            for _ in (w..n).step_by(4) {
                                env.run_cmd(
                                    env.cmd("konductor")
                                        .env("KONDUCTOR_CACHE_DIR", &cache)
                                        .args(["start", "--sha", &env.sha]),
                                )
                                .ok();
                            }
                        });
                    }
                });
                opened += n;
                println!(
                    "soak: {opened} trains opened after {:.0}s",
                    t0.elapsed().as_secs_f64()
                );
            }
            let all = env.server.tags();
            let mut q = Vec::new();
            {
                let mut seen = seen.lock().unwrap();
                for t in &all {
                    if t.matches('=').count() == 2 && seen.insert(t.clone()) {
                        q.push(t.clone());
                    }
                }
            }
            queue.lock().unwrap().extend(q);
            let settled = {
                let d = decided.lock().unwrap();
                let s = seen.lock().unwrap();
                s.len() == d.len() && queue.lock().unwrap().is_empty()
            };
            if settled && opened == trains && all_final(&env, trains) {
                break;
            }
            if t0.elapsed() > bound {
                println!("soak: stopping early at the {}s bound", bound.as_secs());
                early = true;
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Verify against an independent model of what the CI decided.
    let decided = decided.into_inner().unwrap();
    let all = env.server.tags();
    let mut names = BTreeSet::new();
    let mut duplicates = 0;
    for t in all.iter().filter(|t| t.matches('=').count() == 2) {
        if !names.insert(t.clone()) {
            duplicates += 1;
        }
    }
    let mut lost = 0;
    let mut lost_detail = Vec::new();
    let mut gave_up = 0;
    let mut wrong = Vec::new();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut attempts = 0;
    let mut unsettled = 0;
    let check = crate::env_model::check(&env, &SOAK_ENVS, false);
    let env_of = |step: &str| SOAK_ENVS.iter().find(|e| e.step == step);
    for n in 1..=opened {
        let t = format!("{n}.0");
        let status = env.status(&t);
        let state = status["state"].as_str().unwrap().to_string();
        *by_state.entry(state.clone()).or_default() += 1;
        if early && !matches!(state.as_str(), "succeeded" | "failed" | "superseded") {
            // Stopped by the bound while this train was still moving: not judged.
            unsettled += 1;
            continue;
        }
        // Expected: per step, the reported outcomes by attempt.
        let mut step_ok: BTreeMap<&str, Option<bool>> = BTreeMap::new();
        // docs/sdd.md, "Environments": a deploy step whose needs succeeded and that was
        // never triggered is superseded exactly when a newer train claimed its
        // environment; what follows it is superseded too, and so is the train.
        let mut superseded = false;
        let me = crate::env_model::train_id(&t);
        for (step, needs) in NEEDS {
            if superseded {
                let shown = step_of(&status, step)["state"].as_str().unwrap_or("?");
                if shown != "superseded" {
                    wrong.push(format!(
                        "{t} {step}: konductor says {shown}, the model superseded"
                    ));
                }
                step_ok.insert(step, None);
                continue;
            }
            let deps_ok_now = needs.iter().all(|d| step_ok[d] == Some(true));
            if let Some(e) = env_of(step) {
                let never = !decided.contains_key(&format!("release={t}={step}.1"));
                if deps_ok_now && never && check.holders[e.env].iter().any(|h| *h > me) {
                    superseded = true;
                    let shown = step_of(&status, step)["state"].as_str().unwrap_or("?");
                    if shown != "superseded" {
                        wrong.push(format!(
                            "{t} {step}: konductor says {shown}, the model superseded"
                        ));
                    }
                    step_ok.insert(step, None);
                    continue;
                }
            }
            let deps_ok = needs.iter().all(|d| step_ok[d] == Some(true));
            let retries = RETRIES.iter().find(|r| r.0 == step).unwrap().1;
            let outcomes: Vec<Option<bool>> = (1..=20)
                .map_while(|j| decided.get(&format!("release={t}={step}.{j}")).copied())
                .collect();
            attempts += outcomes.len();
            let failures = outcomes.iter().filter(|o| **o == Some(false)).count() as u32;
            // docs/sdd.md, `trigger_timeout`: when the latest attempt and the 3 before it
            // were all never answered, the step fails ("no CI picked up 4 triggers").
            let unanswered = outcomes.iter().rev().take_while(|o| o.is_none()).count();
            // konductor's view of the step.
            let shown_json = step_of(&status, step);
            let mut is_lost = false;
            let mut by_give_up = false;
            let v = if !deps_ok {
                if !outcomes.is_empty() {
                    wrong.push(format!("{t}: {step} ran before its needs succeeded"));
                }
                None
            } else if outcomes.contains(&Some(true)) {
                Some(true)
            } else if failures > retries {
                Some(false)
            } else if unanswered >= UNANSWERED_GIVE_UP {
                gave_up += 1;
                by_give_up = true;
                Some(false)
            } else {
                lost += 1; // a step that should still be moving
                is_lost = true;
                lost_detail.push(format!(
                    "{t} {step}: the CI decided {outcomes:?} (attempts 1..), konductor says {shown_json}"
                ));
                None
            };
            // Per step, konductor must agree with the model, and say why it gave up.
            let shown = (
                shown_json["state"].as_str().unwrap_or("?"),
                shown_json["reason"].as_str().unwrap_or(""),
            );
            let agrees = match v {
                Some(true) => shown.0 == "success",
                Some(false) if by_give_up => {
                    shown.0 == "failure" && shown.1.contains("no CI picked up")
                }
                Some(false) => shown.0 == "failure",
                None => !matches!(shown.0, "success" | "failure"),
            };
            if !agrees && !is_lost {
                wrong.push(format!(
                    "{t} {step}: the CI decided {outcomes:?}, konductor says {} ({})",
                    shown.0, shown.1
                ));
            }
            step_ok.insert(step, v);
        }
        let want = if superseded {
            "superseded"
        } else if step_ok.values().all(|v| *v == Some(true)) {
            "succeeded"
        } else {
            "failed"
        };
        if state != want {
            wrong.push(format!(
                "{t}: status says {state}, the CI's reports say {want}"
            ));
        }
    }
    let errors = tick_errors.into_inner().unwrap();
    println!(
        "soak: {} trigger tags, {attempts} attempts reported or dropped, {} ticks in {:.1}s",
        names.len(),
        ticks.into_inner().unwrap(),
        t0.elapsed().as_secs_f64()
    );
    println!("soak: final states: {by_state:?}");
    if early {
        println!("soak: stopped by the bound: {opened} of {trains} trains opened, {unsettled} still moving (not judged)");
    }
    println!("soak: duplicate trigger tags: {duplicates}");
    println!(
        "soak: steps failed after {UNANSWERED_GIVE_UP} unanswered triggers in a row: {gave_up}"
    );
    println!("soak: lost steps: {lost}");
    println!(
        "soak: trains or steps in a wrong final state: {}",
        wrong.len()
    );
    println!("soak: tick errors: {}", errors.len());
    let refused = refused.into_inner().unwrap();
    println!(
        "soak: environments: deploys {:?}, claims {:?}, regressions {}, double deploys {}, claim faults {}, publishes refused {}",
        check.deploys,
        check.claims,
        check.regressions.len(),
        check.double_deploys.len(),
        check.claim_faults.len(),
        refused.len()
    );
    for x in check
        .regressions
        .iter()
        .chain(&check.double_deploys)
        .chain(&check.claim_faults)
        .chain(&refused)
        .take(10)
    {
        println!("  environment: {x}");
    }
    for w in wrong.iter().take(10) {
        println!("  {w}");
    }
    for l in lost_detail.iter().take(10) {
        println!("  lost: {l}");
    }
    for e in errors.iter().take(5) {
        println!("  tick error: {e}");
    }
    let env_faults = check.regressions.len()
        + check.double_deploys.len()
        + check.claim_faults.len()
        + refused.len();
    if lost > 0 || !wrong.is_empty() || duplicates > 0 || env_faults > 0 {
        // Keep the evidence: a copy of the server's repository.
        let keep =
            std::env::temp_dir().join(format!("konductor-soak-evidence-{}", std::process::id()));
        let cp = std::process::Command::new("cp")
            .arg("-r")
            .arg(&env.server.bare)
            .arg(&keep)
            .status();
        println!(
            "soak: the server's repository is copied to {} ({cp:?})",
            keep.display()
        );
    }
    assert_eq!(duplicates, 0);
    assert_eq!(lost, 0);
    assert!(wrong.is_empty());
    assert_eq!(env_faults, 0);
}

/// Every train has settled: succeeded, failed or superseded.
fn all_final(env: &Env, trains: usize) -> bool {
    if trains == 0 {
        return true;
    }
    let out = env.k(&["status", "--json", "--horizon", &(trains + 5).to_string()]);
    if out.code != 0 {
        return false;
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let list = v["trains"].as_array().cloned().unwrap_or_default();
    list.len() >= trains
        && list.iter().all(|t| {
            matches!(
                t["state"].as_str(),
                Some("succeeded" | "failed" | "superseded")
            )
        })
}
