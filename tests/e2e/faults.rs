//! Faults and attacks: junk and spoofed tags, a server that dies or rejects mid-operation,
//! secrets under failure. After each, the next tick converges with nothing lost or doubled.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Env, SMALL_SDD};
use crate::support::servers::Kind;

/// Install a `pre-receive` hook on the server that injects a fault when a pushed ref
/// matches `pattern` (a shell case pattern): `reject` exits 1, `kill` kills receive-pack.
fn inject(env: &Env, pattern: &str, fault: &str) {
    let action = match fault {
        "reject" => "echo \"injected fault: rejecting $ref\" >&2; exit 1",
        "kill" => "kill -9 $PPID; sleep 5; exit 1",
        _ => unreachable!(),
    };
    let hook = format!(
        "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in\n    refs/tags/{pattern}) {action} ;;\n  esac\ndone\nexit 0\n"
    );
    let p = env.server.bare.join("hooks/pre-receive");
    std::fs::write(&p, hook).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn heal(env: &Env) {
    let _ = std::fs::remove_file(env.server.bare.join("hooks/pre-receive"));
}

fn triggers(env: &Env, t: &str) -> Vec<String> {
    env.tags(t)
        .into_iter()
        .filter(|x| x.matches('=').count() == 2)
        .collect()
}

#[test]
fn a_push_rejected_halfway_through_a_tick_converges_on_the_next_tick() {
    let env = Env::new(
        Kind::Daemon,
        "a: []\nb: []\nc: []\ndone: {needs: [a, b, c], virtual: true}\n",
    );
    let t = env.start();
    inject(&env, "release=1.0=b.1", "reject");
    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("release=1.0=b.1"), "{out:?}");
    // The rejection fails that push only: the tick goes on with the next one.
    assert_eq!(triggers(&env, &t), ["release=1.0=a.1", "release=1.0=c.1"]);
    heal(&env);
    env.tick(&t);
    assert_eq!(
        triggers(&env, &t),
        ["release=1.0=a.1", "release=1.0=b.1", "release=1.0=c.1"]
    );
}

#[test]
fn the_server_dying_mid_tick_or_mid_report_loses_and_doubles_nothing() {
    for kind in [Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        // receive-pack dies while the tick pushes `b.1`.
        inject(&env, "release=1.0=b.1", "kill");
        let out = env.k(&["tick", "--train", &t]);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(matches!(out.code, 3 | 4), "a remote failure: {out:?}");
        heal(&env);
        env.tick(&t);
        assert_eq!(triggers(&env, &t), ["release=1.0=a.1", "release=1.0=b.1"]);
        // receive-pack dies while locomotive pushes `started`; the job retries its report.
        inject(&env, "release=1.0=a.1=started", "kill");
        let out = env.report("release=1.0=a.1", "started");
        assert_eq!(out.code, 3, "{out:?}");
        heal(&env);
        env.report("release=1.0=a.1", "started").ok();
        env.report("release=1.0=a.1", "success").ok();
        env.report("release=1.0=b.1", "success").ok();
        env.tick(&t);
        assert_eq!(
            triggers(&env, &t),
            ["release=1.0=a.1", "release=1.0=b.1", "release=1.0=c.1"]
        );
        assert_eq!(
            env.tags(&t)
                .iter()
                .filter(|x| x.ends_with("a.1=started"))
                .count(),
            1
        );
    }
}

#[test]
fn the_server_down_then_back_converges() {
    let mut env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.server.stop();
    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains(&env.server.url), "{out:?}");
    env.server.start_again();
    env.tick(&t);
    env.tick(&t);
    assert_eq!(triggers(&env, &t), ["release=1.0=a.1", "release=1.0=b.1"]);
}

#[test]
fn ten_thousand_junk_tags_and_spoofs_move_nothing_and_are_flagged() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let other = crate::support::servers::commit_files(&env.server, &[("evil", "1")], "evil");
    // Bulk junk under `release=`, written straight into the server's refs.
    let mut input = String::new();
    for i in 0..10_000 {
        let name = match i % 5 {
            0 => format!("release=1.0=a.{i}=pwned"),
            1 => format!("release=1.0=junk{i}"),
            2 => format!("release=1.0={}{i}.1", "x".repeat(100 + i % 50)),
            3 => format!("release={i}0000000000.0"),
            _ => format!("release=1.0=a.1=success={i}"),
        };
        input.push_str(&format!("create refs/tags/{name} {}\n", env.sha));
    }
    // Spoofs: a state without its trigger, a success for a step whose needs never
    // succeeded (trigger and state forged together), a state on another commit.
    input.push_str(&format!(
        "create refs/tags/release=1.0=c.7=success {}\n",
        env.sha
    ));
    input.push_str(&format!("create refs/tags/release=1.0=d.1 {}\n", env.sha));
    input.push_str(&format!(
        "create refs/tags/release=1.0=d.1=success {}\n",
        env.sha
    ));
    input.push_str(&format!(
        "create refs/tags/release=1.0=b.1=success {other}\n"
    ));
    crate::support::servers::git_stdin(
        &env.server.bare,
        &["update-ref", "--stdin"],
        input.as_bytes(),
    );
    env.server.git(&["pack-refs", "--all"]);

    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("running (nothing to do)"), "{out:?}");
    let out = env.k(&["tick"]);
    assert_eq!(out.code, 0, "junk trains are skipped: {out:?}");
    let s = env.status(&t);
    assert_eq!(env.step_state(&t, "a"), "triggered");
    assert_eq!(env.step_state(&t, "b"), "triggered");
    assert_eq!(env.step_state(&t, "c"), "pending");
    assert_eq!(env.step_state(&t, "d"), "pending");
    let w: Vec<&str> = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let has = |needle: &str| w.iter().any(|x| x.contains(needle));
    assert!(
        has("ignored `release=1.0=c.7=success`: no trigger `release=1.0=c.7` behind it"),
        "{w:?}"
    );
    assert!(
        has("ignored tags of `d`: its dependencies have not all succeeded"),
        "{w:?}"
    );
    assert!(
        has("ignored `release=1.0=b.1=success`: it points to commit"),
        "{w:?}"
    );
    assert!(has("more malformed tags of train 1.0"), "{w:?}");
    assert!(w.len() < 40, "warnings are summarised: {}", w.len());
    // The human status renders and flags them too.
    let text = env.k(&["status", "--train", &t]).ok();
    assert!(text.contains("warning: ignored"), "{text}");
    // The spoofed `b.1=success` takes the name the real report needs: locomotive says so
    // rather than pretending it recorded anything.
    env.report("release=1.0=a.1", "success").ok();
    env.report("release=1.0=b.1", "success")
        .fails(5, "points to commit");
    // The lost-trigger rule heals it: `b` runs again as attempt 2, and the train goes on.
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let out = env
        .run_cmd(
            env.cmd("konductor")
                .env("KONDUCTOR_NOW", later)
                .args(["tick", "--train", &t]),
        )
        .ok();
    assert!(out.contains("trigger release=1.0=b.2"), "{out}");
    env.report("release=1.0=b.2", "success").ok();
    // `c` starts at attempt 8: the spoofed `c.7=success` took the names up to 7.
    let out = env.tick(&t);
    assert!(out.contains("trigger release=1.0=c.8"), "{out}");
}

#[test]
fn a_failing_https_run_never_prints_the_token() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let token = "ghp_SECRETtoken0123456789abcdefABCDEF";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/org/repo.git");
    let url_creds = format!("https://x-access-token:{token}@127.0.0.1:{port}/org/repo.git");
    let mut all = String::new();
    for (bin, args) in [
        (
            "konductor",
            vec!["start", "--sha", env.sha.as_str(), "--remote", url.as_str()],
        ),
        ("konductor", vec!["tick", "--remote", url.as_str()]),
        ("konductor", vec!["status", "--remote", url_creds.as_str()]),
        (
            "konductor",
            vec!["gc", "--keep", "1", "--remote", url_creds.as_str()],
        ),
        (
            "locomotive",
            vec![
                "set-step-state",
                "--state-name",
                "started",
                "--triggering-tag",
                "release=1.0=a.1",
                "--remote",
                url.as_str(),
            ],
        ),
        (
            "locomotive",
            vec![
                "publish-manifests",
                "--dir",
                ".",
                "--tag",
                "staging-k8s",
                "--triggering-tag",
                "release=1.0=a.1",
                "--remote",
                url_creds.as_str(),
            ],
        ),
    ] {
        let out = env.run_cmd(
            env.cmd(bin)
                .env("KONDUCTOR_TOKEN", token)
                .env("GITHUB_TOKEN", token)
                .args(&args),
        );
        assert_eq!(out.code, 3, "{bin} {args:?}: {out:?}");
        all.push_str(&out.stdout);
        all.push_str(&out.stderr);
    }
    assert!(!all.contains(token), "the token leaked:\n{all}");
    assert!(!all.contains("SECRET"), "part of the token leaked:\n{all}");
    assert!(
        all.contains(&format!("https://127.0.0.1:{port}/org/repo.git")),
        "{all}"
    );
}

/// Regression: a tag squatting the name of the next attempt (on another commit, so it is
/// ignored) made every tick push that same name and report `already-exists` forever.
#[test]
fn a_squatted_trigger_name_is_skipped_not_retried_forever() {
    let env = Env::new(
        Kind::Bare,
        "a: {needs: [], retries: 1}\ndone: {needs: [a], virtual: true}\n",
    );
    let t = env.start();
    env.tick(&t);
    let other = crate::support::servers::commit_files(&env.server, &[("evil", "1")], "evil");
    env.server.git(&["tag", "release=1.0=a.2", &other]);
    env.report("release=1.0=a.1", "failure").ok();
    let out = env.tick(&t);
    assert!(
        out.contains("trigger release=1.0=a.3") && out.contains("created"),
        "{out}"
    );
    env.report("release=1.0=a.3", "success").ok();
    assert_eq!(env.status(&t)["state"], "succeeded");
}
