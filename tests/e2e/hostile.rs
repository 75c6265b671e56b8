//! Hostile tags on the remote (issue 12): junk under a train tag's name must never hang a
//! reader, hide a real train, or move the numbering; it is ignored with a warning.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Env, Out, SMALL_SDD};
use crate::support::servers::Kind;

/// Run `git` in the server's repository with `input` on stdin.
fn server_git_input(env: &Env, args: &[&str], input: &str) -> String {
    crate::support::servers::git_stdin(&env.server.bare, args, input.as_bytes())
}

/// An annotated tag on the server, by someone with push access.
fn annotated(env: &Env, name: &str, target: &str) {
    env.server.git(&[
        "-c",
        "user.name=Mallory",
        "-c",
        "user.email=mallory@example.com",
        "tag",
        "-a",
        "-m",
        "junk",
        name,
        target,
    ]);
}

/// A commit whose tree has no `sdd.yaml`.
fn commit_without_graph(env: &Env) -> String {
    let blob = server_git_input(env, &["hash-object", "-w", "--stdin"], "x\n");
    let tree = server_git_input(env, &["mktree"], &format!("100644 blob {blob}\tREADME\n"));
    server_git_input(env, &["commit-tree", "-m", "no graph", &tree], "")
}

/// Run a command that must finish: a hang is a failure, not a stuck suite. The bound is
/// far above any real run (these take well under a second).
fn bounded(env: &Env, args: &[&str]) -> Out {
    let mut cmd = env.cmd("konductor");
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("`konductor {}` did not finish in 300 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The trains of a `status --json` list, in its order.
fn train_ids(v: &serde_json::Value) -> Vec<&str> {
    v["trains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["train"].as_str().unwrap())
        .collect()
}

fn cold(env: &Env) {
    let _ = std::fs::remove_dir_all(&env.cache);
}

#[test]
fn huge_train_number_does_not_hang_readers() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    // Past the grammar's maximum (malformed, ignored) and at it (a train as far as anyone
    // can tell): the probe above it must stop, not wrap.
    annotated(&env, "release=4294967295.0", &env.sha);
    annotated(&env, "release=999999999.0", &env.sha);
    for warm in [false, true] {
        if !warm {
            cold(&env);
        }
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["tick"],
            &["log"],
            &["board", "--out", "board"],
        ] {
            let out = bounded(&env, args);
            assert!(
                out.code == 0,
                "`{}` (warm cache: {warm}): {out:?}",
                args.join(" ")
            );
        }
        let status = bounded(&env, &["status"]);
        assert!(status.stdout.contains("1.0"), "{status:?}");
    }
    // `start` says plainly that no number is left, and names it.
    bounded(&env, &["start", "--sha", &env.sha]).fails(2, "no train number left: `999999999`");
}

#[test]
fn junk_train_far_ahead_hides_no_real_train_from_a_cold_cache() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    assert_eq!(t, "1.0");
    env.tick(&t);
    env.report("release=1.0=a.1", "success").ok();
    // Junk far ahead: a lightweight tag, an annotated tag on a tree, and one on a commit
    // without a graph. None of them is a train.
    env.server.git(&["tag", "release=1000.0", &env.sha]);
    annotated(&env, "release=1001.0", &format!("{}^{{tree}}", env.sha));
    let bare = commit_without_graph(&env);
    annotated(&env, "release=1002.0", &bare);
    for warm in [false, true] {
        if !warm {
            cold(&env);
        }
        let out = bounded(&env, &["status", "--json"]);
        assert_eq!(out.code, 0, "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(train_ids(&v), ["1.0"], "warm cache: {warm}: {v}");
        let ignored: Vec<(&str, &str)> = v["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["tag"].as_str().unwrap(), i["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert!(ignored[0].0 == "release=1002.0" && ignored[0].1.contains("has no `sdd.yaml`"));
        assert!(ignored[1].0 == "release=1001.0" && ignored[1].1.contains("points to a tree"));
        assert!(ignored[2].0 == "release=1000.0" && ignored[2].1.contains("lightweight"));
        let text = bounded(&env, &["status"]);
        assert!(
            text.stderr
                .contains("warning: ignored train tag `release=1000.0`"),
            "{text:?}"
        );
    }
    // A cold tick advances the real train (c needs a and b).
    cold(&env);
    env.report("release=1.0=b.1", "success").ok();
    let out = bounded(&env, &["tick"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("release=1.0=c.1"), "{out:?}");
    assert!(
        !out.stdout.contains("release=100"),
        "junk is never ticked: {out:?}"
    );
    // Numbering ignores junk: the next train is 2.0. A junk tag squatting the next number
    // is skipped by the create-only push, and a warm cache still finds the trains above it.
    cold(&env);
    assert_eq!(env.start(), "2.0");
    env.server.git(&["tag", "release=3.0", &env.sha]);
    assert_eq!(env.start(), "4.0");
    let v: serde_json::Value =
        serde_json::from_str(&bounded(&env, &["status", "--json"]).ok()).unwrap();
    assert_eq!(train_ids(&v), ["4.0", "2.0", "1.0"], "{v}");
}
