//! GitOps deploys: `locomotive publish-manifests` against real remotes.

use std::thread;

use crate::harness::{publish_args, Env, SMALL_SDD};
use crate::support::servers::Kind;

fn publish(env: &Env, dir: &std::path::Path, tag: &str, trigger: &str) -> crate::harness::Out {
    env.l(&publish_args(dir, tag, trigger))
}

#[test]
fn deploy_history_chains_under_the_moving_tag() {
    for kind in [Kind::Bare, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        let dir = env.root.path().join("manifests");
        std::fs::create_dir_all(dir.join("serving")).unwrap();
        for i in 1..=3 {
            std::fs::write(dir.join("serving/deploy.yaml"), format!("replicas: {i}\n")).unwrap();
            let out = publish(&env, &dir, "staging-k8s", "release=1.0=a.1").ok();
            assert!(out.starts_with("staging-k8s: "), "{out}");
        }
        let log = env.server.git(&["log", "--format=%s|%P", "staging-k8s"]);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 3, "{log}");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("deploy train 1.0 to staging-k8s")),
            "{log}"
        );
        assert!(
            lines[2].ends_with('|'),
            "the first deploy has no parent: {log}"
        );
        let body = env.server.git(&["log", "-1", "--format=%B", "staging-k8s"]);
        assert!(
            body.contains(&format!("source: {}", env.sha))
                && body.contains("trigger: release=1.0=a.1"),
            "{body}"
        );
        assert_eq!(
            env.server.git(&["show", "staging-k8s:serving/deploy.yaml"]),
            "replicas: 3\n"
        );
        // The deploy commit is on no branch.
        assert_eq!(
            env.server
                .git(&["branch", "--contains", "staging-k8s"])
                .trim(),
            ""
        );
        // Bad input.
        publish(&env, &dir, "release=9.0", "release=1.0=a.1").fails(2, "cannot be a deploy tag");
        publish(
            &env,
            &env.root.path().join("nope"),
            "staging-k8s",
            "release=1.0=a.1",
        )
        .fails(2, "cannot read manifest directory");
        publish(&env, &dir, "staging-k8s", "release=1.0=a.9").fails(2, "does not exist");
    }
}

#[test]
fn racing_publishes_never_lose_one_silently() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let outs: Vec<(usize, crate::harness::Out)> = thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    let dir = env.root.path().join(format!("m{i}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(dir.join("app.yaml"), format!("writer: {i}\n")).unwrap();
                    (i, publish(env, &dir, "k8s-production", "release=1.0=b.1"))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<usize> = outs
        .iter()
        .filter(|(_, o)| o.code == 0)
        .map(|(i, _)| *i)
        .collect();
    for (_, o) in outs.iter().filter(|(_, o)| o.code != 0) {
        assert_eq!(o.code, 5, "a loser is a reported conflict: {o:?}");
        assert!(
            o.stderr.contains("moved on") && o.stderr.contains("nothing was overwritten"),
            "{o:?}"
        );
    }
    assert!(!winners.is_empty());
    // Every winner is in the history, chained: none was overwritten.
    let history = env.server.git(&["log", "--format=%H", "k8s-production"]);
    assert_eq!(
        history.lines().count(),
        winners.len(),
        "{history} vs {winners:?}"
    );
    let mut seen: Vec<String> = history
        .lines()
        .map(|c| {
            env.server
                .git(&["show", &format!("{c}:app.yaml")])
                .trim()
                .to_string()
        })
        .collect();
    seen.sort();
    let mut want: Vec<String> = winners.iter().map(|i| format!("writer: {i}")).collect();
    want.sort();
    assert_eq!(seen, want);
}
