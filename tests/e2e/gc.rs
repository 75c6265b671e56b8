//! Retention: `gc --keep N` archives old finished trains and deletes their tags.

use crate::harness::Env;
use crate::support::servers::Kind;

const TINY: &str = "a: []\ndone: {needs: [a], virtual: true}\n";

fn finish(env: &Env, t: &str) {
    env.tick(t);
    env.report(&format!("release={t}=a.1"), "success").ok();
}

#[test]
fn gc_archives_old_finished_trains_and_status_still_reads_them() {
    for kind in [Kind::Bare, Kind::Daemon] {
        let env = Env::new(kind, TINY);
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
        let out = env.k(&["gc", "--keep", "2"]).ok();
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
        let again = env.k(&["gc", "--keep", "2"]).ok();
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
}
