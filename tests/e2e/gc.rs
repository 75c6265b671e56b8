//! Retention: `gc --keep N` archives old finished trains and deletes their tags.

use crate::harness::{Env, ALL_KINDS};
use crate::support::servers::{GitServer, Kind, HTTP_PASS, HTTP_USER};
use konductor_core::wire::{delete_refs, Delete, Endpoint, WireError};

const TINY: &str = "a: []\ndone: {needs: [a], virtual: true}\n";

fn finish(env: &Env, t: &str) {
    env.tick(t);
    env.report(&format!("release={t}=a.1"), "success").ok();
}

#[test]
fn gc_archives_old_finished_trains_and_status_still_reads_them() {
    // Every transport, plus the git CLI fallback (https and ssh remotes delete with it).
    let runs = ALL_KINDS
        .iter()
        .map(|k| (*k, false))
        .chain([(Kind::Daemon, true)]);
    for (kind, with_git) in runs {
        let env = Env::new(kind, TINY);
        let gc = |keep: &str| {
            let mut c = env.cmd("konductor");
            c.args(["gc", "--keep", keep]);
            if with_git {
                c.env("KONDUCTOR_DELETE_WITH_GIT", "1");
            }
            env.run_cmd(&mut c)
        };
        for _ in 0..5 {
            let t = env.start();
            if t != "5.0" {
                finish(&env, &t);
            } else {
                env.tick(&t); // 5.0 stays running
            }
        }
        let before_1 = env.k(&["status", "--train", "1.0", "--json"]).ok();
        let log_1 = env.k(&["log", "--train", "1.0"]).ok();
        let dry = env.k(&["gc", "--keep", "2", "--dry-run"]).ok();
        assert!(dry.contains("would archive 2 train(s)"), "{dry}");
        assert_eq!(env.tags("1.0").len(), 3, "dry run changes nothing");
        let out = gc("2").ok();
        assert!(out.contains("kept 2 finished train(s): 4.0, 3.0"), "{out}");
        assert!(
            out.contains("archived 2 train(s) to refs/konductor/archive: 2.0, 1.0"),
            "{out}"
        );
        assert!(out.contains("not collected: train 5.0 (running)"), "{out}");
        assert!(env.tags("1.0").is_empty() && env.tags("2.0").is_empty());
        assert_eq!(env.tags("5.0").len(), 2);
        // The archive holds the full record, and status/log read it.
        let rec = env
            .server
            .git(&["show", "refs/konductor/archive:trains/1.0.json"]);
        assert!(
            rec.contains("\"release=1.0=a.1=success\"") && rec.contains("job_url:"),
            "{rec}"
        );
        let after_1: serde_json::Value =
            serde_json::from_str(&env.k(&["status", "--train", "1.0", "--json"]).ok()).unwrap();
        let mut before: serde_json::Value = serde_json::from_str(&before_1).unwrap();
        before["archived"] = serde_json::Value::Bool(true);
        assert_eq!(after_1, before, "an archived train reads the same");
        assert_eq!(env.k(&["log", "--train", "1.0"]).ok(), log_1);
        // Running it again changes nothing; numbering carries on.
        let again = gc("2").ok();
        assert!(
            again.contains("archived 0 train(s)") && again.contains("deleted 0 tag(s)"),
            "{again}"
        );
        assert_eq!(env.start(), "6.0");
        env.k(&["gc", "--keep", "0"]).fails(2, "--keep");
    }
}

#[test]
fn an_interrupted_gc_loses_nothing_and_a_rerun_finishes() {
    let env = Env::new(Kind::Bare, TINY);
    for _ in 0..3 {
        let t = env.start();
        finish(&env, &t);
    }
    // Remember train 1.0's tags, as an interrupted run would leave some behind.
    let kept: Vec<(String, String)> = env
        .tags("1.0")
        .into_iter()
        .filter(|t| t != "release=1.0")
        .map(|t| {
            let oid = env
                .server
                .git(&["rev-parse", &format!("refs/tags/{t}")])
                .trim()
                .to_string();
            (t, oid)
        })
        .collect();
    env.k(&["gc", "--keep", "2"]).ok();
    // The run "died" after deleting the train tag: put the other tags back.
    for (t, oid) in &kept {
        env.server
            .git(&["update-ref", &format!("refs/tags/{t}"), oid]);
    }
    // Meanwhile someone replaced one of them: its new value must reach the archive too.
    let commit = env
        .server
        .git(&["rev-parse", "refs/tags/release=1.0=a.1^{commit}"])
        .trim()
        .to_string();
    env.server
        .git(&["update-ref", "refs/tags/release=1.0=a.1=success", &commit]);
    // Orphans are ignored by ticks (no train tag) ...
    assert!(!env.k(&["tick"]).ok().contains("1.0"));
    // ... and the next gc finishes the job, with the archive intact.
    let out = env.k(&["gc", "--keep", "2"]).ok();
    assert!(
        out.contains("finished an interrupted run for: 1.0"),
        "{out}"
    );
    assert!(env.tags("1.0").is_empty());
    assert_eq!(env.status("1.0")["state"], "succeeded");
    let rec = env
        .server
        .git(&["show", "refs/konductor/archive:trains/1.0.json"]);
    assert_eq!(
        rec.matches("\"release=1.0=a.1=success\"").count(),
        2,
        "both versions of the replaced tag are archived: {rec}"
    );
}

/// The native delete push: one atomic push, compare-and-swap on every ref, over each
/// transport it speaks; a ref that changed is never deleted, a ref already gone is fine.
/// ssh is not spoken natively: gc then deletes with the git CLI (covered by the gc test
/// above, which runs over ssh too).
#[test]
fn native_deletes_are_compare_and_swap_on_every_transport() {
    assert!(matches!(
        Endpoint::parse("ssh://git@127.0.0.1:22/x.git"),
        Err(WireError::Unsupported(_))
    ));
    for kind in [Kind::Bare, Kind::Daemon, Kind::Http] {
        let root = tempfile::tempdir().unwrap();
        let server = GitServer::start(kind, root.path(), "wire");
        let c1 = crate::support::servers::commit_files(&server, &[("a", "1")], "one");
        let c2 = crate::support::servers::commit_files(&server, &[("a", "2")], "two");
        for t in ["x", "y", "z"] {
            server.git(&["update-ref", &format!("refs/tags/{t}"), &c1]);
        }
        let auth = (kind == Kind::Http).then(|| {
            let b = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import base64,sys; print(base64.b64encode(sys.argv[1].encode()).decode())",
                    &format!("{HTTP_USER}:{HTTP_PASS}"),
                ])
                .output()
                .unwrap();
            format!(
                "Authorization: Basic {}",
                String::from_utf8_lossy(&b.stdout).trim()
            )
        });
        let ep = Endpoint::parse(&server.url).unwrap();
        let del = |r: &str, old: &str| Delete {
            refname: format!("refs/tags/{r}"),
            old: old.to_string(),
        };
        // y "changed" (we expect c2), w never existed.
        let rep = delete_refs(
            &ep,
            auth.as_deref(),
            &[del("x", &c1), del("y", &c2), del("w", &c1), del("z", &c1)],
        )
        .unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
        assert_eq!(rep.deleted, ["refs/tags/x", "refs/tags/z"], "{kind:?}");
        assert_eq!(rep.changed, ["refs/tags/y"], "{kind:?}");
        assert_eq!(rep.gone, ["refs/tags/w"], "{kind:?}");
        assert_eq!(server.tags(), ["y"], "{kind:?}");
        // Nothing left to do: no push at all.
        let rep = delete_refs(&ep, auth.as_deref(), &[del("x", &c1)]).unwrap();
        assert_eq!(rep.gone, ["refs/tags/x"]);
        if kind == Kind::Http {
            let bad = format!("Authorization: Basic {}", "YWxpY2U6d3Jvbmc="); // alice:wrong
            match delete_refs(&ep, Some(&bad), &[del("y", &c1)]) {
                Err(WireError::Auth(m)) => assert!(!m.contains("YWxpY2U6d3Jvbmc"), "{m}"),
                other => panic!("wrong credentials: {other:?}"),
            }
            assert_eq!(server.tags(), ["y"]);
        }
    }
}
