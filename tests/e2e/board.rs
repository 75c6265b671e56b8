//! The demo train, seen three ways: status JSON and the audit log (pinned by snapshots),
//! and the HTML board in a real headless browser.

use std::path::{Path, PathBuf};

use crate::browser;
use crate::harness::Env;
use crate::support::servers::{commit_files, Kind};

const SEED_SDD: &str = include_str!("../../sdd.yaml");
const T0: i64 = 1_795_000_000;

/// Run the seed train (two trains, as `make demo` does) with a fixed clock, so that every
/// output is reproducible. Returns the env.
fn demo_trains() -> Env {
    let env = Env::with_files(
        Kind::Bare,
        &[("sdd.yaml", SEED_SDD), ("flavors.yaml", "serving: 3\n")],
    );
    let mut now = T0;
    let k = |env: &Env, now: i64, args: &[&str]| {
        env.run_cmd(
            env.cmd("konductor")
                .env("KONDUCTOR_NOW", now.to_string())
                .args(args),
        )
        .ok()
    };
    let report = |env: &Env, now: i64, tag: &str, state: &str| {
        env.run_cmd(
            env.cmd("locomotive")
                .env("KONDUCTOR_NOW", now.to_string())
                .env("KONDUCTOR_IDENTITY", "Demo CI <ci@demo.invalid>")
                .args([
                    "set-step-state",
                    "--state-name",
                    state,
                    "--triggering-tag",
                    tag,
                    "--info-string",
                    &format!(
                        "job_url:https://ci.demo.invalid/{}",
                        tag.trim_start_matches("release=")
                    ),
                ]),
        )
        .ok();
    };
    let run = |env: &Env, t: &str, now: &mut i64| {
        for _ in 0..12 {
            *now += 60;
            let out = k(env, *now, &["tick", "--train", t]);
            let tags: Vec<String> = out
                .lines()
                .filter(|l| l.contains(": trigger "))
                .filter_map(|l| {
                    l.split_whitespace()
                        .find(|w| w.starts_with("release="))
                        .map(str::to_string)
                })
                .collect();
            if tags.is_empty() && out.contains("nothing to do") {
                return;
            }
            for tag in tags {
                *now += 5;
                report(env, *now, &tag, "started");
                *now += 30;
                report(env, *now, &tag, "success");
            }
        }
    };
    now += 1;
    let t1 = k(&env, now, &["start", "--sha", &env.sha])
        .trim()
        .to_string();
    run(&env, &t1, &mut now);
    now += 600;
    k(
        &env,
        now,
        &[
            "unblock",
            "--train",
            &t1,
            "--step",
            "require-manual-unblock-before-prod-deploy",
            "--reason",
            "flavor change reviewed",
            "--by",
            "Train Engineer <te@demo.invalid>",
        ],
    );
    run(&env, &t1, &mut now);
    let sha2 = commit_files(&env.server, &[("app.py", "print(2)\n")], "second");
    now += 3600;
    let t2 = k(&env, now, &["start", "--sha", &sha2]).trim().to_string();
    run(&env, &t2, &mut now);
    env
}

fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(want == actual, "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept):\n--- want\n{want}\n--- got\n{actual}");
}

fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn demo_train_status_log_and_board() {
    let env = demo_trains();
    let at = (T0 + 100_000).to_string();
    let k = |args: &[&str]| {
        env.run_cmd(env.cmd("konductor").env("KONDUCTOR_NOW", &at).args(args))
            .ok()
    };

    // Snapshots: status JSON of both trains, the train list, and the audit log.
    snapshot(
        "status-1.0.json",
        &k(&["status", "--train", "1.0", "--json"]),
    );
    snapshot(
        "status-2.0.json",
        &k(&["status", "--train", "2.0", "--json"]),
    );
    snapshot("status-list.txt", &k(&["status"]));
    snapshot("log-1.0.txt", &k(&["log", "--train", "1.0"]));
    snapshot("log-2.0.jsonl", &k(&["log", "--train", "2.0", "--json"]));

    // The board, in a real browser.
    let out = env.root.path().join("board");
    k(&["board", "--out", out.to_str().unwrap()]);
    let html = out.join("index.html");
    let Some(_) = browser::chromium() else {
        panic!(
            "chromium is required for this test (apt-get install chromium; `make test` installs it)"
        );
    };
    let (dom, errors) = browser::load(&html);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    for t in ["1.0", "2.0"] {
        let status: serde_json::Value =
            serde_json::from_str(&k(&["status", "--train", t, "--json"])).unwrap();
        for step in status["steps"].as_array().unwrap() {
            let name = step["name"].as_str().unwrap();
            let state = step["state"].as_str().unwrap();
            let needle = format!(r#"data-train="{t}" data-step="{name}" data-state="{state}""#);
            assert!(dom.contains(&needle), "board lacks {needle}");
        }
    }
    assert!(dom
        .contains(r#"data-step="require-manual-unblock-before-prod-deploy" data-state="skipped""#));
    let png = artifacts().join("board.png");
    let _ = std::fs::remove_file(&png);
    browser::screenshot(&html, &png);
    assert!(
        std::fs::metadata(&png)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot at {}",
        png.display()
    );
    std::fs::copy(&html, artifacts().join("board.html")).unwrap();
}
