//! The heart of the product on each kind of server: start, tick, report, status.

use crate::harness::{publish_args, Env, ALL_KINDS, SMALL_SDD};
use crate::support::servers::{ssh_command, Kind};

fn train_loop(kind: Kind) {
    let env = Env::new(kind, SMALL_SDD);
    let t = env.start();
    assert_eq!(t, "1.0");
    assert_eq!(env.tags("1.0"), ["release=1.0"]);

    // Leaves first, each as its own create-only push.
    let out = env.tick(&t);
    assert!(
        out.contains("trigger release=1.0=a.1") && out.contains("trigger release=1.0=b.1"),
        "{out}"
    );
    assert_eq!(
        env.tags("1.0"),
        ["release=1.0", "release=1.0=a.1", "release=1.0=b.1"]
    );
    // A rerun with nothing new does nothing.
    assert!(env.tick(&t).contains("nothing to do"));
    assert_eq!(env.tags("1.0").len(), 3);

    // `c` waits for both its dependencies.
    env.report("release=1.0=a.1", "started").ok();
    env.report("release=1.0=a.1", "success").ok();
    env.tick(&t);
    assert!(!env
        .tags("1.0")
        .iter()
        .any(|x| x.starts_with("release=1.0=c.")));
    env.report("release=1.0=b.1", "success").ok();
    assert!(env.tick(&t).contains("trigger release=1.0=c.1"));

    // A failure blocks its downstream; the train fails.
    env.report("release=1.0=c.1", "failure").ok();
    assert!(env.tick(&t).contains("failed (nothing to do)"));
    let s = env.status(&t);
    assert_eq!(s["state"], "failed");
    assert_eq!(env.step_state(&t, "d"), "blocked");
    assert_eq!(env.step_state(&t, "a"), "success");

    // A retry makes the next attempt; the train flows on.
    env.k(&["retry", "--train", &t, "--step", "c"]).ok();
    env.report("release=1.0=c.2", "success").ok();
    assert!(env.tick(&t).contains("trigger release=1.0=d.1"));
    env.report("release=1.0=d.1", "success").ok();
    env.tick(&t);
    let s = env.status(&t);
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(s["train"], "1.0");
    assert_eq!(s["sha"], env.sha);
    assert_eq!(s["target"], "done");
    let c = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "c")
        .unwrap();
    assert_eq!(c["attempt"], 2);
    assert_eq!(
        c["attempts"].as_array().unwrap().len(),
        2,
        "every attempt stays visible"
    );
    assert_eq!(c["job_url"], "https://ci.example.com/release/1.0/c.2");
    // Nothing more to do, and no tag was made twice.
    assert!(env.tick(&t).contains("succeeded (nothing to do)"));
    let tags = env.tags("1.0");
    let triggers: Vec<_> = tags
        .iter()
        .filter(|x| x.matches('=').count() == 2)
        .collect();
    assert_eq!(
        triggers,
        [
            "release=1.0=a.1",
            "release=1.0=b.1",
            "release=1.0=c.1",
            "release=1.0=c.2",
            "release=1.0=d.1"
        ]
    );

    // A second start gets the next number; a hotfix of train 1 gets 1.1.
    assert_eq!(env.start(), "2.0");
    assert_eq!(
        env.k(&["start", "--sha", &env.sha, "--hotfix", "1"])
            .ok()
            .trim(),
        "1.1"
    );
    // Ticking every train: the hotfix and 2.0 both start their leaves.
    let out = env.k(&["tick"]).ok();
    assert!(out.contains("train 1.1: trigger release=1.1=a.1"), "{out}");
    assert!(out.contains("train 2.0: trigger release=2.0=a.1"), "{out}");
    assert!(
        out.contains("train 1.0: succeeded (nothing to do)"),
        "{out}"
    );
}

#[test]
fn train_loop_on_a_bare_path() {
    train_loop(Kind::Bare);
}

#[test]
fn train_loop_on_git_daemon() {
    train_loop(Kind::Daemon);
}

#[test]
fn train_loop_on_smart_http_with_basic_auth() {
    train_loop(Kind::Http);
}

#[test]
fn train_loop_on_ssh() {
    train_loop(Kind::Ssh);
}

#[test]
fn locomotive_refuses_bad_reports_and_repeats_are_no_ops() {
    for kind in ALL_KINDS {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        env.l(&[
            "set-step-state",
            "--state-name",
            "started",
            "--triggering-tag",
            "release=1.0=a",
        ])
        .fails(2, "malformed tag `release=1.0=a`");
        env.l(&[
            "set-step-state",
            "--state-name",
            "started",
            "--triggering-tag",
            "release=1.0=a.1=started",
        ])
        .fails(2, "did you mean `release=1.0=a.1`?");
        env.l(&[
            "set-step-state",
            "--state-name",
            "started",
            "--triggering-tag",
            "release=1.0=a.7",
        ])
        .fails(2, "does not exist on");
        env.l(&[
            "set-step-state",
            "--state-name",
            "done",
            "--triggering-tag",
            "release=1.0=a.1",
        ])
        .fails(2, "invalid value 'done'");
        env.l(&[
            "set-step-state",
            "--state-name",
            "started",
            "--triggering-tag",
            "release=1.0=a.1",
            "--sha",
            &"0".repeat(40),
        ])
        .fails(2, "is not the commit of `release=1.0=a.1`");
        env.report("release=1.0=a.1", "success").ok();
        let again = env.report("release=1.0=a.1", "success").ok();
        assert!(again.contains("already-recorded"), "{again}");
        // A contradicting report is the CI's re-run of the job (see tests/e2e/rerun.rs).
        let rerun = env.report("release=1.0=a.1", "failure").ok();
        assert!(rerun.contains("release=1.0=a.1=rerun.1=failure"), "{rerun}");
        let tags = env.tags("1.0");
        assert!(!tags.iter().any(|x| x.ends_with("a.1=failure")), "{tags:?}");
        assert_eq!(
            tags.iter().filter(|x| x.ends_with("a.1=success")).count(),
            1
        );
    }
}

#[test]
fn a_state_tag_on_another_commit_is_ignored_and_reported() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    // Someone pushes `success` for `a.1` on a different commit.
    let other = crate::support::servers::commit_files(&env.server, &[("x", "y")], "other");
    env.server.git(&[
        "tag",
        "-a",
        "-m",
        "spoofed",
        "release=1.0=a.1=success",
        &other,
    ]);
    let s = env.status(&t);
    assert_eq!(env.step_state(&t, "a"), "triggered");
    let warnings = s["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("ignored `release=1.0=a.1=success`: it points to commit")),
        "{s}"
    );
    // It can never complete the step: a tick triggers nothing downstream.
    env.report("release=1.0=b.1", "success").ok();
    assert!(!env.tick(&t).contains("release=1.0=c.1"));
    // The human table flags it too.
    let text = env.k(&["status", "--train", &t]).ok();
    assert!(
        text.contains("warning: ignored `release=1.0=a.1=success`"),
        "{text}"
    );
}

#[test]
fn malformed_tags_on_the_remote_are_warnings_not_errors() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let t = env.start();
    for junk in [
        "release=1.0=a.x",
        "release=1.0=a.1=maybe",
        "release=1.0=%20",
        "release=01.0",
    ] {
        env.server.git(&["tag", junk, &env.sha]);
    }
    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("trigger release=1.0=a.1"));
    let all = env.k(&["tick"]);
    assert_eq!(all.code, 0, "{all:?}");
}

#[test]
fn wrong_password_fails_cleanly_and_never_prints_it() {
    let env = Env::new(Kind::Http, SMALL_SDD);
    let secret = "wrong-pass-9f8e7d";
    for args in [
        vec!["start", "--sha", env.sha.as_str()],
        vec!["tick"],
        vec!["status"],
    ] {
        let out = env.run_cmd(
            env.cmd("konductor")
                .env("KONDUCTOR_TOKEN", secret)
                .args(&args),
        );
        assert_eq!(out.code, 4, "{args:?}: {out:?}");
        assert!(out.stderr.contains("rejected the credentials"), "{out:?}");
        assert!(
            out.stderr.contains(&env.server.url),
            "names the remote: {out:?}"
        );
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "{out:?}"
        );
    }
    // Credentials in the URL are redacted too.
    let url = env.server.url_with_creds("alice", secret);
    let out = env.run_cmd(
        env.cmd("konductor")
            .env_remove("KONDUCTOR_TOKEN")
            .args(["status", "--remote", &url]),
    );
    assert_eq!(out.code, 4, "{out:?}");
    assert!(!out.stderr.contains(secret), "{out:?}");
    let out = env.run_cmd(env.cmd("locomotive").env("KONDUCTOR_TOKEN", secret).args([
        "set-step-state",
        "--state-name",
        "started",
        "--triggering-tag",
        "release=1.0=a.1",
    ]));
    assert_eq!(out.code, 4, "{out:?}");
    assert!(!out.stderr.contains(secret), "{out:?}");
    // Nothing was written.
    assert!(env.tags("1.0").is_empty());
}

/// ssh: a key the server does not accept is exit 4 and an unknown host key exit 3, each
/// with what to check, on the read path (libgit2) and the push path (the git CLI); nothing
/// is written.
#[test]
fn ssh_rejected_key_and_unknown_host_key_fail_cleanly() {
    let env = Env::new(Kind::Ssh, SMALL_SDD);
    let ssh = env.home.join(".ssh");
    let stranger = env.root.path().join("stranger");
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap()
        .success());
    let good_key = std::fs::read(ssh.join("id_ed25519")).unwrap();
    let known = std::fs::read(ssh.join("known_hosts")).unwrap();
    let start = ["start", "--sha", env.sha.as_str()];
    let key_hint = "check that the SSH key in use is one the server accepts";
    let host_hint = "ssh-keyscan";

    // Reads (libgit2, $HOME/.ssh): a stranger's key, then an unknown host.
    std::fs::copy(&stranger, ssh.join("id_ed25519")).unwrap();
    env.k(&["status"]).fails(4, key_hint);
    std::fs::write(ssh.join("id_ed25519"), &good_key).unwrap();
    std::fs::write(ssh.join("known_hosts"), "").unwrap();
    let out = env.k(&["status"]).fails(3, host_hint);
    assert!(
        out.stderr.contains(&env.server.url),
        "names the remote: {out:?}"
    );
    std::fs::write(ssh.join("known_hosts"), &known).unwrap();

    // Pushes (the git CLI, GIT_SSH_COMMAND): reads work, the push is refused.
    let cli_stranger = ssh_command(&stranger, &ssh.join("known_hosts"));
    env.run_cmd(
        env.cmd("konductor")
            .env("GIT_SSH_COMMAND", &cli_stranger)
            .args(start),
    )
    .fails(4, key_hint);
    let cli_unknown_host = format!(
        "{} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes",
        ssh_command(&ssh.join("id_ed25519"), std::path::Path::new("/dev/null"))
    );
    env.run_cmd(
        env.cmd("konductor")
            .env("GIT_SSH_COMMAND", &cli_unknown_host)
            .args(start),
    )
    .fails(3, host_hint);
    assert!(
        env.server.tags().iter().all(|t| !t.starts_with("release=")),
        "nothing written"
    );

    // With the right key and host, the same command works.
    assert_eq!(env.k(&start).ok().trim(), "1.0");
}

#[test]
fn unreachable_remote_is_named_with_its_own_exit_code() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://bob:hunter2@127.0.0.1:{port}/nothing.git");
    let out = env.run_cmd(env.cmd("konductor").args(["status", "--remote", &url]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("http://127.0.0.1:{port}/nothing.git")),
        "{out:?}"
    );
    assert!(!out.stderr.contains("hunter2"), "{out:?}");
    let out =
        env.run_cmd(
            env.cmd("konductor")
                .args(["tick", "--remote", "git://127.0.0.1:1/none.git"]),
        );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("git://127.0.0.1:1/none.git"), "{out:?}");
}

/// Regression: pushing from the shallow, partial cache failed over the network (libgit2's
/// push walks the parents of the commits the remote has) as soon as the train's commit
/// had a parent. The fixtures' first commits are root commits, which hid it.
#[test]
fn regression_pushes_work_from_a_shallow_cache_when_the_train_commit_has_history() {
    for kind in [Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let sha2 =
            crate::support::servers::commit_files(&env.server, &[("app.py", "2\n")], "second");
        let sha3 =
            crate::support::servers::commit_files(&env.server, &[("app.py", "3\n")], "third");
        assert_ne!(sha2, sha3);
        let t = env.k(&["start", "--sha", &sha3]).ok().trim().to_string();
        assert!(env.tick(&t).contains("trigger release=1.0=a.1"));
        env.report("release=1.0=a.1", "started").ok();
        env.report("release=1.0=a.1", "success").ok();
        env.report("release=1.0=b.1", "success").ok();
        assert!(env.tick(&t).contains("trigger release=1.0=c.1"));
        let dir = env.root.path().join("m");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            std::fs::write(dir.join("x.yaml"), format!("{i}\n")).unwrap();
            env.l(&publish_args(&dir, "staging-k8s", "release=1.0=a.1"))
                .ok();
        }
    }
}
