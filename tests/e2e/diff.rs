//! What is in a train (issue 16): `konductor diff` between trains and environments,
//! against real git servers: commits, pull requests, files and gates; only commits and
//! trees fetched; bad input and hostile history.

use serde_json::Value;

use crate::harness::{publish_args, Env};
use crate::support::servers::{git_stdin, Kind};

/// Staging and production deploy at once (no needs), so a test can place any train on
/// either with one tick and `publish-manifests`. `flavors.yaml` gates a rebuild.
pub(crate) const DIFF_SDD: &str = "\
build: []
rebuild: {needs: [build], if_changed: [flavors.yaml]}
deploy_staging: {needs: [], environment: staging, deploy_tag: staging-k8s}
deploy_prod: {needs: [], environment: production, deploy_tag: k8s-production}
done: {needs: [build, rebuild, deploy_staging, deploy_prod], virtual: true}
";

pub(crate) fn data(s: &str) -> String {
    format!("data {}\n{s}\n", s.len())
}

/// Run a `git fast-import` script in the server's repository; the marks it exported.
pub(crate) fn fast_import(env: &Env, script: &str) {
    git_stdin(
        &env.server.bare,
        &["fast-import", "--quiet", "--date-format=raw"],
        script.as_bytes(),
    );
}

pub(crate) fn head(env: &Env) -> String {
    env.server
        .git(&["rev-parse", "refs/heads/main"])
        .trim()
        .to_string()
}

pub(crate) fn commit_header(branch: &str, msg: &str, t: u64, from: Option<&str>) -> String {
    let mut s = format!(
        "commit {branch}\nauthor Ann Dev <ann@example.com> {t} +0000\ncommitter Ann Dev <ann@example.com> {t} +0000\n{}",
        data(msg)
    );
    if let Some(f) = from {
        s.push_str(&format!("from {f}\n"));
    }
    s
}

/// Five commits on main after the first: a squash merge touching `flavors.yaml`, a
/// feature branch (adding a 2 MB file) merged as a GitHub pull request, a GitLab merge
/// request commit renaming a file, and a plain commit deleting one.
fn feature_history(env: &Env) -> String {
    let big: String = (0..2_000_000u32)
        .map(|i| char::from(b'a' + ((i.wrapping_mul(2_654_435_761) >> 27) % 26) as u8))
        .collect();
    let mut s = commit_header(
        "refs/heads/main",
        "Add GPU flavor (#41)",
        1_700_000_100,
        Some("refs/heads/main^0"),
    );
    s.push_str(&format!(
        "M 100644 inline flavors.yaml\n{}M 100644 inline old/name.txt\n{}M 100644 inline doomed.txt\n{}\n",
        data("serving: 2\n"),
        data("same\n"),
        data("bye\n")
    ));
    s.push_str(&format!("blob\nmark :1\n{}", data(&big)));
    s.push_str(
        &commit_header(
            "refs/heads/feat",
            "Big model",
            1_700_000_200,
            Some("refs/heads/main"),
        )
        .replacen("\n", "\nmark :2\n", 1),
    );
    s.push_str("M 100644 :1 model.bin\n\n");
    s.push_str(&commit_header(
        "refs/heads/main",
        "Merge pull request #42 from acme/big-model\n\nShip the big model",
        1_700_000_300,
        None,
    ));
    // (fast-import does not merge trees: the merge commit carries the file itself.)
    s.push_str("merge :2\nM 100644 :1 model.bin\n\n");
    s.push_str(&commit_header(
        "refs/heads/main",
        "Merge branch 'rename' into 'main'\n\nRename the notes\n\nSee merge request acme/app!7",
        1_700_000_400,
        None,
    ));
    s.push_str("R old/name.txt new/name.txt\n\n");
    s.push_str(&commit_header(
        "refs/heads/main",
        "Drop doomed",
        1_700_000_500,
        None,
    ));
    s.push_str("D doomed.txt\n\n");
    fast_import(env, &s);
    head(env)
}

/// Start a train on `sha`, tick it once and publish its deploy to `envs` (step, tag).
pub(crate) fn train_on(env: &Env, sha: &str, envs: &[(&str, &str)]) -> String {
    let t = env.k(&["start", "--sha", sha]).ok().trim().to_string();
    env.tick(&t);
    let dir = env.root.path().join(format!("manifests-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), format!("train: {t}\n")).unwrap();
    for (step, tag) in envs {
        let trig = format!("release={t}={step}.1");
        env.report(&trig, "started").ok();
        let dir_s = dir.to_str().unwrap().to_string();
        env.l(&publish_args(std::path::Path::new(&dir_s), tag, &trig))
            .ok();
        env.report(&trig, "success").ok();
    }
    t
}

fn json(out: String) -> Value {
    serde_json::from_str(&out).expect("diff --json")
}

#[test]
fn diff_lists_commits_pull_requests_and_files_between_environments() {
    for kind in [Kind::Bare, Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, DIFF_SDD);
        let t1 = train_on(
            &env,
            &env.sha,
            &[
                ("deploy_prod", "k8s-production"),
                ("deploy_staging", "staging-k8s"),
            ],
        );
        let tip = feature_history(&env);
        let t2 = train_on(&env, &tip, &[("deploy_staging", "staging-k8s")]);
        assert_eq!((t1.as_str(), t2.as_str()), ("1.0", "2.0"));

        let r = json(env.k(&["diff", "production", "staging", "--json"]).ok());
        assert_eq!(r["relation"], "ahead", "{r}");
        assert_eq!(r["from"]["train"], "1.0");
        assert_eq!(r["from"]["environment"], "production");
        assert_eq!(r["to"]["commit"], tip.as_str());
        assert_eq!(r["commits_total"], 5, "{r}");
        // `konductor env` says how far staging is ahead of production, with its PRs.
        let e = json(env.k(&["env", "--json"]).ok());
        assert_eq!(e["ahead"][0]["environment"], "staging", "{e}");
        assert_eq!(e["ahead"][0]["of"], "production", "{e}");
        assert_eq!(e["ahead"][0]["commits_total"], 5, "{e}");
        assert_eq!(e["ahead"][0]["pull_requests_total"], 3, "{e}");
        let text = env.k(&["env"]).ok();
        assert!(
            text.contains("ahead of production: 5 commits, 3 pull requests (#7, #42, #41)"),
            "{text}"
        );
        let prs: Vec<(u64, String)> = r["pull_requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["number"].as_u64().unwrap(),
                    p["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            prs,
            [
                (7, "merge-request".to_string()),
                (42, "merge".to_string()),
                (41, "squash".to_string())
            ],
            "{r}"
        );
        let files: Vec<(String, String, Value)> = r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["kind"].as_str().unwrap().to_string(),
                    f["gates"].clone(),
                )
            })
            .collect();
        assert!(
            files.contains(&(
                "flavors.yaml".into(),
                "modified".into(),
                serde_json::json!(["rebuild"])
            )),
            "{files:?}"
        );
        assert!(
            files.contains(&("model.bin".into(), "added".into(), Value::Null)),
            "{files:?}"
        );
        assert!(
            files.contains(&("new/name.txt".into(), "added".into(), Value::Null)),
            "{files:?}"
        );
        assert_eq!(r["files_total"], 3, "{files:?}");
        // Only commits and trees: the 2 MB file was never fetched.
        assert_eq!(r["fetch"]["filtered"], true);
        let bytes = r["fetch"]["bytes"].as_u64().unwrap();
        assert!(bytes < 200_000, "fetched {bytes} bytes");

        // Train to train: a rename (same content) and a delete, from 2.0's parent.
        let text = env.k(&["diff", "1.0", "2.0"]).ok();
        assert!(text.contains("commits (5):"), "{text}");
        assert!(text.contains("#42  Ship the big model"), "{text}");
        assert!(text.contains("acme/app!7  Rename the notes"), "{text}");
        assert!(text.contains("[triggers rebuild]"), "{text}");
        assert!(!text.contains(crate::support::servers::HTTP_PASS), "{text}");

        // Backwards: said so, nothing listed.
        let back = env.k(&["diff", "staging", "production"]).ok();
        assert!(back.contains("is older than"), "{back}");
        assert!(back.contains("commits (0):"), "{back}");
        let same = json(env.k(&["diff", "2.0", "staging", "--json"]).ok());
        assert_eq!(same["relation"], "same");

        // `status --train`: what the train brings over the one before and over production.
        let status = env.k(&["status", "--train", &t2]).ok();
        assert!(
            status.contains("brings over train 1.0: 5 commits, 3 pull requests (acme/app!7 Rename the notes; #42 Ship the big model; #41 Add GPU flavor), 3 files"),
            "{status}"
        );
        assert!(
            status.contains("brings over `production` (train 1.0): 5 commits"),
            "{status}"
        );
        let s = env.status(&t2);
        assert_eq!(s["changes"]["previous"]["commits_total"], 5, "{s}");
        assert_eq!(s["changes"]["production"]["to"]["train"], "2.0", "{s}");
        // The board: each train's change list and what waits for production, collapsed.
        if kind == Kind::Bare {
            let dir = env.root.path().join("board");
            env.k(&["board", "--out", dir.to_str().unwrap()]).ok();
            let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
            let changes = &html[html
                .find("<section id=\"changes\">")
                .expect("a changes section")..];
            assert!(
                changes
                    .contains("<b>train 2.0 over 1.0</b> · 5 commits · 3 pull requests · 3 files"),
                "{changes}"
            );
            assert!(
                changes
                    .contains("<b>waiting to reach production: staging from 2.0</b> · 5 commits"),
                "{changes}"
            );
            assert!(
                changes.contains("<code>#42</code> Ship the big model"),
                "{changes}"
            );
        }
        let s1 = env.status(&t1);
        assert_eq!(
            s1["changes"]["previous"]["note"], "no earlier train",
            "{s1}"
        );
    }
}

#[test]
fn diff_renames_need_trees_only() {
    let env = Env::new(Kind::Daemon, DIFF_SDD);
    let mut s = commit_header(
        "refs/heads/main",
        "add",
        1_700_000_100,
        Some("refs/heads/main^0"),
    );
    s.push_str(&format!(
        "M 100644 inline a/notes.txt\n{}\n",
        data("notes\n")
    ));
    fast_import(&env, &s);
    let t1 = train_on(&env, &head(&env), &[]);
    let s = commit_header(
        "refs/heads/main",
        "move",
        1_700_000_200,
        Some("refs/heads/main^0"),
    ) + "R a/notes.txt b/notes.txt\n\n";
    fast_import(&env, &s);
    let t2 = train_on(&env, &head(&env), &[]);
    let r = json(env.k(&["diff", &t1, &t2, "--json"]).ok());
    assert_eq!(r["files"][0]["kind"], "renamed", "{r}");
    assert_eq!(r["files"][0]["from"], "a/notes.txt");
    assert_eq!(r["files"][0]["path"], "b/notes.txt");
}

#[test]
fn diff_of_unknown_trains_and_environments_is_refused() {
    let env = Env::new(Kind::Bare, DIFF_SDD);
    let t1 = train_on(&env, &env.sha, &[("deploy_staging", "staging-k8s")]);
    env.k(&["diff", &t1, "9.9"])
        .fails(2, "train `9.9` does not exist");
    env.k(&["diff", "qa", &t1]).fails(2, "unknown train or environment `qa`; the graph of train 1.0 declares `staging`, `production`");
    env.k(&["diff", "production", &t1])
        .fails(2, "nothing is deployed to `production` yet");
    env.k(&["diff", "1.x", &t1]).fails(2, "invalid train `1.x`");
    env.k(&["diff", "no/such", &t1])
        .fails(2, "is neither a train (`N.P`) nor an environment name");
}

#[test]
fn an_environment_whose_commit_was_force_pushed_away_is_named() {
    for kind in [Kind::Bare, Kind::Daemon] {
        let env = Env::new(kind, DIFF_SDD);
        let mut s = commit_header(
            "refs/heads/main",
            "doomed work",
            1_700_000_100,
            Some("refs/heads/main^0"),
        );
        s.push_str(&format!("M 100644 inline x\n{}\n", data("x\n")));
        fast_import(&env, &s);
        let doomed = head(&env);
        let t1 = train_on(&env, &doomed, &[("deploy_prod", "k8s-production")]);
        let t2 = train_on(&env, &env.sha, &[]);
        // The branch is force-pushed back, the train's tags deleted, the commit collected.
        env.server.git(&["update-ref", "refs/heads/main", &env.sha]);
        // (Every tag on it: the train's and the environment's claim.)
        for t in env.server.git(&["tag", "--points-at", &doomed]).lines() {
            env.server.git(&["tag", "-d", t]);
        }
        env.server
            .git(&["reflog", "expire", "--expire=now", "--all"]);
        env.server.git(&["gc", "--prune=now", "--quiet"]);
        let out = env.k(&["diff", "production", &t2]).fails(2, "is not on");
        assert!(
            out.stderr
                .contains(&format!("commit `{doomed}` of `production` (train {t1})")),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("force-pushed away or collected"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_range_of_100000_commits_is_listed_up_to_the_limit() {
    let env = Env::new(Kind::Daemon, DIFF_SDD);
    let t1 = train_on(&env, &env.sha, &[]);
    let mut s = String::with_capacity(20_000_000);
    for i in 0..100_000u64 {
        s.push_str(&commit_header(
            "refs/heads/main",
            &format!("step {i} (#{})", i + 1),
            1_700_000_000 + i,
            (i == 0).then_some("refs/heads/main^0"),
        ));
        s.push_str(&format!(
            "M 100644 inline counter\n{}\n",
            data(&i.to_string())
        ));
    }
    fast_import(&env, &s);
    let t2 = train_on(&env, &head(&env), &[]);
    let started = std::time::Instant::now();
    let r = json(env.k(&["diff", &t1, &t2, "--json", "--limit", "50"]).ok());
    assert_eq!(r["commits_total"], 100_000);
    assert_eq!(r["commits"].as_array().unwrap().len(), 50);
    assert_eq!(r["pull_requests_total"], 100_000);
    assert_eq!(r["pull_requests"].as_array().unwrap().len(), 50);
    assert_eq!(r["limit"], 50);
    let text = env.k(&["diff", &t1, &t2]).ok();
    assert_eq!(
        text.lines().filter(|l| l.contains("Ann Dev")).count(),
        200,
        "the default limit"
    );
    assert!(
        text.contains("… 99800 more commits"),
        "{}",
        &text[..500.min(text.len())]
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn unrelated_histories_are_said_to_share_nothing() {
    let env = Env::new(Kind::Bare, DIFF_SDD);
    let t1 = train_on(&env, &env.sha, &[]);
    let sdd = env
        .server
        .git(&["rev-parse", &format!("{}:sdd.yaml", env.sha)]);
    let tree = git_stdin(
        &env.server.bare,
        &["mktree"],
        format!("100644 blob {}\tsdd.yaml\n", sdd.trim()).as_bytes(),
    );
    let orphan = git_stdin(
        &env.server.bare,
        &["commit-tree", "-m", "orphan", tree.trim()],
        b"",
    );
    env.server
        .git(&["update-ref", "refs/heads/orphan", orphan.trim()]);
    let t2 = train_on(&env, orphan.trim(), &[]);
    let r = json(env.k(&["diff", &t1, &t2, "--json"]).ok());
    assert_eq!(r["relation"], "unrelated", "{r}");
    assert_eq!(r["commits_total"], 1);
    let text = env.k(&["diff", &t1, &t2]).ok();
    assert!(text.contains("share no history"), "{text}");
}
