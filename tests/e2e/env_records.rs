//! The records environments leave: `konductor log` lists claims in causal order, and
//! `konductor gc` prunes old claims so that live refs stay bounded. Real git servers.

use crate::environments::{claims, drive, ENV_SDD};
use crate::harness::Env;
use crate::support::servers::Kind;

/// Before: `log` showed a deploy's trigger with no trace of the claim that allowed it.
#[test]
fn log_lists_the_claim_before_the_deploy_it_allowed() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    let t1 = env.start();
    let t2 = env.start();
    drive(&env, &t2, &["verify_staging"]);
    drive(&env, &t1, &[]);
    let log = env.k(&["log", "--train", &t2]).ok();
    let at = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{log}"))
    };
    let claim = at("claimed    deploy_staging");
    assert!(
        log.lines().nth(claim).unwrap().contains("train: 2.0"),
        "{log}"
    );
    assert!(at("success    build.1") < claim, "{log}");
    assert!(claim < at("triggered  deploy_staging.1"), "{log}");
    // Train 1.0 was superseded: its log says so, and it never claimed.
    let log1 = env.k(&["log", "--train", &t1]).ok();
    assert!(log1.contains("superseded deploy_staging"), "{log1}");
    assert!(!log1.contains("claimed"), "{log1}");
    // JSON: the claim is an event of train 2.0 with its tag.
    let json = env.k(&["log", "--train", &t2, "--json"]).ok();
    let ev: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let c = ev
        .iter()
        .find(|e| e["event"] == "claimed")
        .expect("a claim");
    assert_eq!(c["tag"], "env=staging.1");
    assert_eq!(c["train"], "2.0");
    assert_eq!(c["step"], "deploy_staging");
}

/// Before: every deploy left a claim tag forever, and gc never removed one, so live refs
/// (and every push's advertisement) grew with the number of deploys.
#[test]
fn gc_prunes_old_claims_and_keeps_the_newest_of_each_environment() {
    let env = Env::new(Kind::Daemon, ENV_SDD);
    for _ in 0..4 {
        let t = env.start();
        drive(&env, &t, &[]);
        assert_eq!(env.status(&t)["state"], "succeeded");
    }
    assert_eq!(claims(&env, "staging").len(), 4);
    let dry = env.k(&["gc", "--keep", "1", "--dry-run"]).ok();
    assert!(
        dry.contains("would archive and delete 6 environment claim(s)"),
        "{dry}"
    );
    assert_eq!(
        claims(&env, "staging").len(),
        4,
        "a dry run deletes nothing"
    );
    let out = env.k(&["gc", "--keep", "1"]).ok();
    assert!(
        out.contains("archived and deleted 6 environment claim(s)"),
        "{out}"
    );
    assert_eq!(claims(&env, "staging"), ["env=staging.4"]);
    assert_eq!(claims(&env, "production"), ["env=production.4"]);
    // The pruned claims are in the archive.
    let archived = env
        .server
        .git(&["show", "refs/konductor/archive:claims/staging.json"]);
    for k in 1..=3 {
        assert!(
            archived.contains(&format!("\"env=staging.{k}\"")),
            "{archived}"
        );
    }
    // The next train claims the next number: none is reused.
    let t = env.start();
    drive(&env, &t, &[]);
    assert_eq!(env.status(&t)["state"], "succeeded");
    assert_eq!(claims(&env, "staging"), ["env=staging.4", "env=staging.5"]);
    // A second gc keeps what a live train claimed and archives next to the first run.
    let t6 = env.start();
    drive(&env, &t6, &["verify_staging"]);
    env.k(&["gc", "--keep", "1"]).ok();
    assert_eq!(claims(&env, "staging"), ["env=staging.5", "env=staging.6"]);
    let archived = env
        .server
        .git(&["show", "refs/konductor/archive:claims/staging.json"]);
    for k in 1..=4 {
        assert!(
            archived.contains(&format!("\"env=staging.{k}\"")),
            "{archived}"
        );
    }
}
