//! The environment events of notifications against real git servers and real HTTP
//! receivers on loopback: `env.rolled_back` and `env.frozen` from what `konductor
//! rollback` and `konductor freeze` record, a GitHub deployment for a rollback, and a
//! comment on each pull request that reaches production.

use crate::env_control::{deploy, SDD};
use crate::harness::Env;
use crate::notify::{ids, tick_notify, validate_against_schema};
use crate::support::github_api::FakeGitHubRest;
use crate::support::receiver::{Receiver, Request};
use crate::support::servers::Kind;

const TOKEN: &str = "ghs_envNotifyTOKEN0123456789";

fn gh_vars(api: &FakeGitHubRest) -> Vec<(&'static str, String)> {
    vec![
        ("KONDUCTOR_GITHUB_API", api.base.clone()),
        ("KONDUCTOR_GITHUB_REPO", "acme/app".to_string()),
        ("KONDUCTOR_GITHUB_TOKEN", TOKEN.to_string()),
    ]
}

#[test]
fn a_rollback_and_a_freeze_are_each_announced_once() {
    let env = Env::new(Kind::Daemon, SDD);
    let t1 = env.start();
    deploy(&env, &t1, 1);
    let t2 = env.start();
    deploy(&env, &t2, 2);
    env.k(&[
        "rollback",
        "--env",
        "staging",
        "--to",
        &t1,
        "--reason",
        "2.0 leaks memory",
    ])
    .ok();
    env.k(&[
        "freeze",
        "--env",
        "staging",
        "--reason",
        "incident 7",
        "--until",
        "2h",
    ])
    .ok();
    let rollback = env
        .server
        .git(&["rev-parse", "staging-k8s^{commit}"])
        .trim()
        .to_string();
    let rx = Receiver::start();
    let hook = format!("webhook+{}", rx.url("/hooks"));
    let api = FakeGitHubRest::start("acme/app", TOKEN);
    let vars = gh_vars(&api);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Only the newest train is followed: the rollback's train (1.0) is found through the
    // deploy tag, and its markers go on its commit.
    let out = tick_notify(&env, &t2, &[&hook, "github"], &extra);
    let stdout = out.ok();
    let rolled = format!("{t1}=env.rolled_back=staging.{}", &rollback[..10]);
    // The freeze is the second record (the rollback's pin is the first); the train that
    // ran when it was made is 1.0, the rollback's.
    let frozen = format!("{t1}=env.frozen=staging.2");
    assert!(
        stdout.contains(&format!("notify: {rolled} → webhook-")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("notify: {frozen} → webhook-")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("notify: {rolled} → github: sent")),
        "{stdout}"
    );
    // Again, and again with another tick following both trains: nothing new.
    let again = tick_notify(&env, &t2, &[&hook, "github"], &extra).ok();
    assert!(!again.contains("env.rolled_back"), "{again}");
    assert!(!again.contains("env.frozen"), "{again}");
    let again = tick_notify(&env, &t1, &[&hook, "github"], &extra).ok();
    assert!(!again.contains("env.rolled_back"), "{again}");

    let reqs = rx.taken();
    let counts = ids(&reqs);
    assert_eq!(counts.get(&rolled), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&frozen), Some(&1), "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let by_id = |id: &str| {
        reqs.iter()
            .map(Request::json)
            .find(|j| j["id"] == id)
            .unwrap()
    };
    let r = by_id(&rolled);
    assert_eq!(r["event"], "env.rolled_back");
    assert_eq!(r["train"], t1.as_str());
    assert_eq!(r["environment"], "staging");
    assert_eq!(r["step"], "deploy_staging");
    assert_eq!(r["commit"], env.sha.as_str());
    assert_eq!(r["by"], "Test Runner <runner@example.com>");
    assert_eq!(r["reason"], "2.0 leaks memory");
    let f = by_id(&frozen);
    assert_eq!(f["event"], "env.frozen");
    assert_eq!(f["environment"], "staging");
    assert_eq!(f["by"], "Test Runner <runner@example.com>");
    assert_eq!(f["reason"], "incident 7");
    assert!(f["until"].as_str().is_some_and(|u| u.ends_with('Z')), "{f}");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("konductor unfreeze --env staging"));
    validate_against_schema(&reqs.iter().map(Request::json).collect::<Vec<_>>());

    // GitHub: a deployment of the train rolled back to, at once successful, so that
    // GitHub marks the earlier ones inactive.
    let calls = api.calls();
    assert!(calls.iter().all(|c| c.2 == "ok"), "{calls:?}");
    let rb: Vec<_> = calls
        .iter()
        .filter(|c| c.1["auto_inactive"] == true)
        .collect();
    assert_eq!(rb.len(), 1, "{calls:?}");
    assert_eq!(rb[0].1["state"], "success");
    assert_eq!(rb[0].1["environment"], "staging");
    assert!(rb[0].1["description"]
        .as_str()
        .unwrap()
        .contains("rolled back to train 1.0"));
    // Its markers are train 1.0's, so gc collects them with it.
    let tags = env.server.tags();
    assert!(
        tags.iter()
            .any(|t| t.starts_with(&format!("notify={rolled}=github.1=sent"))),
        "{tags:?}"
    );
}

/// Three commits on main: a squash merge (#5), a GitHub merge (#6), a GitLab merge
/// request (not GitHub's: no comment). Returns the tip.
fn pull_requests(env: &Env) -> String {
    use crate::diff::{commit_header, data, fast_import, head};
    let mut s = commit_header(
        "refs/heads/main",
        "Fix login (#5)",
        1_700_000_100,
        Some("refs/heads/main^0"),
    );
    s.push_str(&format!("M 100644 inline login.txt\n{}\n", data("fixed\n")));
    s.push_str(
        &commit_header(
            "refs/heads/feat",
            "Faster search",
            1_700_000_200,
            Some("refs/heads/main"),
        )
        .replacen('\n', "\nmark :2\n", 1),
    );
    s.push_str(&format!("M 100644 inline search.txt\n{}\n", data("fast\n")));
    s.push_str(&commit_header(
        "refs/heads/main",
        "Merge pull request #6 from acme/search\n\nFaster search",
        1_700_000_300,
        None,
    ));
    s.push_str(&format!(
        "merge :2\nM 100644 inline search.txt\n{}\n",
        data("fast\n")
    ));
    s.push_str(&commit_header(
        "refs/heads/main",
        "Merge branch 'notes' into 'main'\n\nNotes\n\nSee merge request acme/app!7",
        1_700_000_400,
        None,
    ));
    s.push_str(&format!("M 100644 inline notes.txt\n{}\n", data("n\n")));
    fast_import(env, &s);
    head(env)
}

fn comments(api: &FakeGitHubRest) -> Vec<(String, String)> {
    api.calls()
        .into_iter()
        .filter(|c| c.0.ends_with("/comments"))
        .map(|c| (c.0, c.1["body"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn each_pull_request_that_reaches_production_gets_one_comment() {
    use crate::diff::{train_on, DIFF_SDD};
    let env = Env::new(Kind::Daemon, DIFF_SDD);
    let api = FakeGitHubRest::start("acme/app", TOKEN);
    let vars = gh_vars(&api);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let t1 = train_on(
        &env,
        &env.sha,
        &[
            ("deploy_prod", "k8s-production"),
            ("deploy_staging", "staging-k8s"),
        ],
    );
    // The first deploy to production: nothing to compare with, no comment.
    tick_notify(&env, &t1, &["github"], &extra).ok();
    assert_eq!(comments(&api), vec![]);
    let tip = pull_requests(&env);
    // Staging is not production: its deploy brings no comment.
    let t2 = train_on(&env, &tip, &[("deploy_staging", "staging-k8s")]);
    tick_notify(&env, &t2, &["github"], &extra).ok();
    assert_eq!(comments(&api), vec![]);
    env.report(&format!("release={t2}=deploy_prod.1"), "started")
        .ok();
    let dir = env.root.path().join("manifests-prod");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), "train: 2\n").unwrap();
    env.l(&crate::harness::publish_args(
        &dir,
        "k8s-production",
        &format!("release={t2}=deploy_prod.1"),
    ))
    .ok();
    env.report(&format!("release={t2}=deploy_prod.1"), "success")
        .ok();
    // Two racing ticks, then one more: each pull request is commented on once.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| tick_notify(&env, &t2, &["github"], &extra).ok());
        }
    });
    let out = tick_notify(&env, &t2, &["github"], &extra).ok();
    assert!(!out.contains("pr.commented"), "{out}");
    let mut got = comments(&api);
    got.sort();
    let paths: Vec<&str> = got.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "POST /repos/acme/app/issues/5/comments",
            "POST /repos/acme/app/issues/6/comments"
        ],
        "{got:?}"
    );
    for (_, body) in &got {
        assert!(
            body.contains(&format!("Deployed to `production` in train {t2}"))
                && body.contains(&format!("previous deploy: train {t1}")),
            "{body}"
        );
    }
    assert!(api.calls().iter().all(|c| c.2 == "ok"), "{:?}", api.calls());
    let tags = env.server.tags();
    for n in [5, 6] {
        assert!(
            tags.iter()
                .any(|t| t == &format!("notify={t2}=pr.commented={n}=github.1=sent")),
            "{tags:?}"
        );
    }
}

#[test]
fn two_serve_replicas_notify_each_event_once() {
    use crate::serve::Serve;
    const GATE_SDD: &str =
        "a: []\ngate: {needs: [a], manual: true}\ndone: {needs: [gate], virtual: true}\n";
    let env = Env::new(Kind::Daemon, GATE_SDD);
    let t = env.start();
    env.tick(&t);
    env.report(&format!("release={t}=a.1"), "success").ok();
    let rx = Receiver::start();
    let hook = format!("webhook+{}", rx.url("/hooks"));
    let remote = format!("app={}", env.server.url);
    // Each replica has its own cache, as on two machines; their first round ticks every
    // running train at once, and the gate starts waiting.
    let replicas: Vec<Serve> = (0..2)
        .map(|i| {
            let cache = env.root.path().join(format!("replica-{i}"));
            Serve::start_with(
                &env,
                std::slice::from_ref(&remote),
                &["--notify", &hook],
                &[
                    ("KONDUCTOR_NOTIFY_SECRET", crate::notify::SECRET),
                    ("KONDUCTOR_CACHE_DIR", cache.to_str().unwrap()),
                ],
            )
        })
        .collect();
    for s in &replicas {
        s.wait_until("a round of ticks", || {
            s.log()
                .iter()
                .any(|l| l.contains("every running train (interval)"))
        });
    }
    let id = format!("{t}=gate.waiting=gate");
    let counts = ids(&rx.taken());
    assert_eq!(counts.get(&id), Some(&1), "{counts:?}");
    let logs: Vec<String> = replicas.iter().flat_map(|s| s.log()).collect();
    let sent: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("notify `app`") && l.contains(&id) && l.ends_with(": sent"))
        .collect();
    assert_eq!(sent.len(), 1, "{logs:#?}");
    assert!(
        logs.iter().all(|l| !l.contains(crate::notify::SECRET)),
        "{logs:#?}"
    );
}
