//! Boundary values and hostile graphs (issue 12): what anyone who can push a tag or a
//! commit can make Konductor's readers do with numbers, times and `sdd.yaml`. Each test is
//! a row of `docs/bad-input.md`, section "Hostile remotes and boundary values".

use std::time::{Duration, Instant};

use crate::harness::{Env, SMALL_SDD};
use crate::support::servers::{commit_files, Kind};

/// Write an annotated tag object with any tagger time (git itself would write only sane
/// ones) straight into the server's repository.
fn raw_tag(env: &Env, name: &str, time: &str, message: &str) {
    let body = format!(
        "object {}\ntype commit\ntag {name}\ntagger Mallory <m@example.com> {time} +0000\n\n{message}\n",
        env.sha
    );
    let file = env.root.path().join("raw-tag");
    std::fs::write(&file, body).unwrap();
    let oid = env
        .server
        .git(&[
            "hash-object",
            "-t",
            "tag",
            "-w",
            "--literally",
            file.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    env.server
        .git(&["update-ref", &format!("refs/tags/{name}"), &oid]);
}

#[test]
fn deeply_nested_sdd_on_one_train_does_not_stall_the_tick() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    env.start();
    // 200 KB of nested brackets: libyaml's scanner is quadratic in the depth; refusing
    // this took 51 s (release build) on every tick.
    let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let sha = commit_files(&env.server, &[("sdd.yaml", &deep)], "deep");
    assert_eq!(env.k(&["start", "--sha", &sha]).ok().trim(), "2.0");
    let t0 = Instant::now();
    let out = env.k(&["tick"]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "tick took {took:?}");
    // Train 2.0 is refused (exit 2, its error printed); train 1.0 advanced all the same.
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("train 2.0")
            && out
                .stderr
                .contains("lists and maps nest deeper than 64 levels"),
        "{out:?}"
    );
    assert_eq!(
        env.tags("1.0"),
        ["release=1.0", "release=1.0=a.1", "release=1.0=b.1"]
    );
    assert_eq!(env.tags("2.0"), ["release=2.0"]);
}

#[test]
fn timeouts_past_the_maximum_are_refused_instead_of_firing_at_once() {
    // `as i64` made 9223372036854775808s negative: the job timed out at once, and the
    // trigger timeout re-triggered on every tick.
    let env = Env::new(
        Kind::Daemon,
        "a: {timeout: 9223372036854775808s, trigger_timeout: 9223372036854775808s}\ndone: {needs: [a], virtual: true}\n",
    );
    let t = env.start();
    for _ in 0..2 {
        let out = env.k(&["tick"]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains(
                "`timeout` of step `a` is `9223372036854775808s`, longer than the longest allowed (365d)"
            ) && out.stderr.contains("`trigger_timeout` of step `a` is `9223372036854775808s`"),
            "{out:?}"
        );
    }
    assert_eq!(env.tags(&t), ["release=1.0"]);
}

#[test]
fn timeouts_at_the_maximum_wait_a_year_and_no_longer() {
    let env = Env::new(
        Kind::Daemon,
        "a: {timeout: 365d, trigger_timeout: 365d}\ndone: {needs: [a], virtual: true}\n",
    );
    let year: i64 = 365 * 86_400;
    let now: i64 = 1_800_000_000;
    let at = |secs: i64| {
        let mut c = env.cmd("konductor");
        c.env("KONDUCTOR_NOW", secs.to_string());
        c
    };
    env.run_cmd(at(now).args(["start", "--sha", &env.sha])).ok();
    env.run_cmd(at(now).args(["tick", "--train", "1.0"])).ok();
    // Never started: a year later it is still waiting, one second more re-triggers it.
    env.run_cmd(at(now + year).args(["tick", "--train", "1.0"]))
        .ok();
    assert_eq!(env.tags("1.0"), ["release=1.0", "release=1.0=a.1"]);
    env.run_cmd(at(now + year + 1).args(["tick", "--train", "1.0"]))
        .ok();
    assert_eq!(
        env.tags("1.0"),
        ["release=1.0", "release=1.0=a.1", "release=1.0=a.2"]
    );
    // Started: it times out after a year and a second, not before.
    let start = now + year + 1;
    let mut c = env.cmd("locomotive");
    c.env("KONDUCTOR_NOW", start.to_string()).args([
        "set-step-state",
        "--state-name",
        "started",
        "--triggering-tag",
        "release=1.0=a.2",
    ]);
    env.run_cmd(&mut c).ok();
    env.run_cmd(at(start + year).args(["tick", "--train", "1.0"]))
        .ok();
    assert!(!env
        .server
        .tags()
        .contains(&"release=1.0=a.2=timeout".to_string()));
    env.run_cmd(at(start + year + 1).args(["tick", "--train", "1.0"]))
        .ok();
    assert!(env
        .server
        .tags()
        .contains(&"release=1.0=a.2=timeout".to_string()));
    // The clock at its own extreme changes nothing but the verdicts above.
    env.run_cmd(at(i64::MAX).args(["status", "--train", "1.0"]))
        .ok();
}

#[test]
fn start_after_the_largest_train_number_is_refused() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    // Annotated, on a commit with a graph: a train as far as anyone can tell (a lightweight
    // tag would be ignored as junk, and `start` would open 1.0).
    env.server.git(&[
        "-c",
        "user.name=Mallory",
        "-c",
        "user.email=m@example.com",
        "tag",
        "-a",
        "-m",
        "train",
        "release=999999999.0",
        &env.sha,
    ]);
    let before = env.server.tags();
    env.k(&["start", "--sha", &env.sha]).fails(
        2,
        "no train number left: `999999999` is the largest the tag protocol allows",
    );
    env.k(&["start", "--sha", &env.sha, "--hotfix", "999999999"])
        .ok();
    env.server
        .git(&["tag", "release=999999999.999999999", &env.sha]);
    env.k(&["start", "--sha", &env.sha, "--hotfix", "999999999"])
        .fails(2, "no patch number left");
    let mut after = before.clone();
    after.push("release=999999999.1".into());
    after.push("release=999999999.999999999".into());
    after.sort();
    assert_eq!(env.server.tags(), after);
}

#[test]
fn extreme_tagger_times_never_give_negative_durations() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    // Started in the far future, succeeded at the epoch; and times git2 reads as -1 or
    // past any calendar.
    raw_tag(&env, "release=1.0=a.1=started", "99999999999", "started");
    raw_tag(&env, "release=1.0=a.1=success", "0", "success");
    raw_tag(
        &env,
        "release=1.0=b.1=started",
        "18446744073709551615",
        "started",
    );
    raw_tag(&env, "release=1.0=b.1=success", "1", "success");
    let status = env.status(&t);
    for s in status["steps"].as_array().unwrap() {
        if let Some(d) = s["duration_secs"].as_i64() {
            assert!(d >= 0, "{}: duration_secs {d}", s["name"]);
        }
        for a in s["attempts"].as_array().unwrap() {
            assert!(a["duration_secs"].as_i64().is_none_or(|d| d >= 0), "{a}");
            for k in ["triggered_at", "started_at", "finished_at"] {
                if let Some(x) = a[k].as_str() {
                    assert_eq!(x.len(), 20, "{k}: {x}");
                }
            }
        }
    }
    assert_eq!(status["steps"][0]["state"], "success", "{status}");
    env.k(&["log", "--train", &t]).ok();
    env.k(&[
        "board",
        "--out",
        env.root.path().join("board").to_str().unwrap(),
    ])
    .ok();
}

#[test]
fn ignored_tags_of_unknown_steps_are_capped_per_train() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    for i in 0..30 {
        env.server
            .git(&["tag", &format!("release=1.0=junk{i}.1"), &env.sha]);
    }
    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("no such step") || l.contains("more steps the train's graph"))
        .collect();
    assert_eq!(lines.len(), 6, "{}", out.stderr);
    assert!(
        lines[5].contains("… and the tags of 25 more steps the train's graph does not have"),
        "{}",
        out.stderr
    );
}

#[test]
fn unblock_of_a_gate_about_to_be_skipped_says_why() {
    let sdd = "a: []\ngate: {needs: [a], manual: true, if_changed: [\"k8s/**\"]}\ndone: {needs: [gate], virtual: true}\n";
    let env = Env::with_files(
        Kind::Daemon,
        &[("sdd.yaml", sdd), ("k8s/app.yaml", "x: 1\n")],
    );
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "success").ok();
    env.tick(&t);
    env.k(&["unblock", "--train", &t, "--step", "gate"]).ok();
    env.tick(&t);
    assert_eq!(env.status(&t)["state"], "succeeded");
    // Train 2.0 changes nothing under k8s/: its gate will be skipped, and the tick that
    // records it has not run yet.
    let sha = commit_files(&env.server, &[("README", "hi\n")], "docs");
    env.k(&["start", "--sha", &sha]).ok();
    env.tick("2.0");
    env.report("release=2.0=a.1", "success").ok();
    let out = env
        .k(&["unblock", "--train", "2.0", "--step", "gate"])
        .fails(2, "gate `gate` of train 2.0 is not waiting for an unblock: skipping: nothing matching `k8s/**` changed since train 1.0");
    assert!(!out.stderr.contains("()"), "{out:?}");
    assert!(
        !env.server
            .tags()
            .contains(&"release=2.0=gate=unblocked".to_string()),
        "nothing was written"
    );
}

#[test]
fn a_byte_order_mark_in_sdd_yaml_is_not_a_second_document() {
    let env = Env::new(Kind::Daemon, "\u{feff}a: []\nb: [a]\n");
    let t = env.start();
    env.tick(&t);
    assert_eq!(env.tags(&t), ["release=1.0", "release=1.0=a.1"]);
}
