//! `locomotive set-step-state` from the CI job's checkout: one push, no fetch, when the
//! checkout has the trigger tag and its commit; the general path (a temporary repository
//! and a fetch) otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Env, Out, SMALL_SDD};
use crate::support::servers::{hermetic, Kind};

/// Run git in `dir` with the test's hermetic environment.
fn git(env: &Env, dir: &Path, args: &[&str]) -> String {
    let mut c = Command::new("git");
    hermetic(&mut c, &env.home);
    let o = c.arg("-C").arg(dir).args(args).output().expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A CI job's checkout: a clone of the branch, then the trigger tag (as actions/checkout
/// and CircleCI's checkout fetch it).
fn ci_checkout(env: &Env, trigger: &str) -> PathBuf {
    let co = env
        .root
        .path()
        .join(format!("co-{}", trigger.replace('=', "_")));
    git(
        env,
        env.root.path(),
        &[
            "clone",
            "-q",
            "--no-tags",
            &env.server.url,
            co.to_str().unwrap(),
        ],
    );
    git(
        env,
        &co,
        &[
            "fetch",
            "-q",
            "origin",
            &format!("refs/tags/{trigger}:refs/tags/{trigger}"),
        ],
    );
    co
}

/// `locomotive set-step-state` run in `dir` with `GIT_TRACE` on; the trace's git commands.
fn report_in(env: &Env, dir: &Path, tag: &str, state: &str) -> (Out, String) {
    let trace = env.root.path().join("git-trace");
    let _ = std::fs::remove_file(&trace);
    let mut c = env.cmd("locomotive");
    c.current_dir(dir).env("GIT_TRACE", &trace).args([
        "set-step-state",
        "--state-name",
        state,
        "--triggering-tag",
        tag,
    ]);
    let out = env.run_cmd(&mut c);
    let traced = std::fs::read_to_string(&trace).unwrap_or_default();
    (out, traced)
}

/// Whether a fetch ran: `git fetch` (traced as `built-in: git fetch`, quoted by older git),
/// or a local `upload-pack`.
fn fetched(trace: &str) -> bool {
    trace.contains("'fetch'") || trace.contains("git fetch") || trace.contains("upload-pack")
}

/// Whether a `git fetch` process ran (a native upload-pack conversation is not one).
fn git_fetch_ran(trace: &str) -> bool {
    trace.contains("'fetch'") || trace.contains("git fetch")
}

#[test]
fn locomotive_in_a_checkout_pushes_once_and_fetches_nothing() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let trig = "release=1.0=a.1";
    let co = ci_checkout(&env, trig);

    let (out, trace) = report_in(&env, &co, trig, "started");
    assert!(out.ok().contains(&format!("{trig}=started: created")));
    assert!(trace.contains("receive-pack"), "{trace}");
    assert!(
        !fetched(&trace),
        "no fetch from a checkout that has the trigger:\n{trace}"
    );
    // `success` while `started` (not in the checkout) is there: still no fetch.
    let (out, trace) = report_in(&env, &co, trig, "success");
    assert!(out.ok().contains(&format!("{trig}=success: created")));
    assert!(!fetched(&trace), "{trace}");
    assert_eq!(env.step_state(&t, "a"), "success");
    // The tags are the ones the general path writes: on the train's commit, readable.
    let commit = git(&env, &co, &["rev-parse", &format!("{trig}^{{commit}}")]);
    let on = env
        .server
        .git(&["rev-parse", &format!("{trig}=success^{{commit}}")]);
    assert_eq!(commit.trim(), on.trim());
    env.server.git(&["fsck", "--no-dangling"]);

    // Whatever the checkout can't decide goes the general way: a repeat is one tag…
    let (out, trace) = report_in(&env, &co, trig, "success");
    assert!(out.ok().contains("already-recorded"));
    assert!(fetched(&trace), "{trace}");
    // …and the CI's Re-run after the end is re-run 1.
    let (out, _) = report_in(&env, &co, trig, "started");
    assert!(out
        .ok()
        .contains(&format!("{trig}=rerun.1=started: created")));
    // (Which run a `failure` now belongs to depends on whether the unseen tags are
    // trusted: the general path reads them.)
    let (out, _) = report_in(&env, &co, trig, "failure");
    assert!(out
        .ok()
        .contains(&format!("{trig}=rerun.1=failure: created")));
    assert_eq!(env.step_state(&t, "a"), "failure");
}

#[test]
fn locomotive_in_a_checkout_checks_the_sha_and_the_trigger() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let trig = "release=1.0=b.1";
    let co = ci_checkout(&env, trig);
    let mut c = env.cmd("locomotive");
    c.current_dir(&co).args([
        "set-step-state",
        "--state-name",
        "started",
        "--triggering-tag",
        trig,
        "--sha",
        "0000000000000000000000000000000000000000",
    ]);
    env.run_cmd(&mut c)
        .fails(2, "the job ran on another commit");
    // A trigger the remote doesn't have, though the checkout has a tag of that name.
    git(
        &env,
        &co,
        &["tag", "-a", "-m", "forged", "release=1.0=zz.1", "HEAD"],
    );
    let (out, _) = report_in(&env, &co, "release=1.0=zz.1", "started");
    out.fails(2, "does not exist");
    assert!(env
        .tags("1.0")
        .iter()
        .all(|t| !t.starts_with("release=1.0=b.1=")));
    let (out, trace) = report_in(&env, &co, trig, "started");
    assert!(out.ok().contains("created"));
    assert!(!fetched(&trace), "{trace}");
}

#[test]
fn locomotive_in_a_checkout_without_the_commit_falls_back() {
    let env = Env::new(Kind::Bare, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let trig = "release=1.0=a.1";
    // A repository with the trigger's tag object but not its commit.
    let co = env.root.path().join("no-commit");
    std::fs::create_dir_all(&co).unwrap();
    git(&env, &co, &["init", "-q"]);
    let raw = env.server.git(&["cat-file", "tag", trig]);
    let oid = crate::support::servers::git_stdin(
        &co,
        &["hash-object", "-t", "tag", "-w", "--stdin", "--literally"],
        raw.as_bytes(),
    );
    git(
        &env,
        &co,
        &["update-ref", &format!("refs/tags/{trig}"), oid.trim()],
    );

    let (out, trace) = report_in(&env, &co, trig, "started");
    assert!(out.ok().contains(&format!("{trig}=started: created")));
    assert!(fetched(&trace), "the general path fetches:\n{trace}");
    // And a directory that is no repository at all (the tags are read natively).
    let (out, trace) = report_in(&env, env.root.path(), trig, "success");
    assert!(out.ok().contains(&format!("{trig}=success: created")));
    assert!(!git_fetch_ran(&trace), "{trace}");
    assert_eq!(env.step_state(&t, "a"), "success");
}

/// Without a checkout, a report ran two git processes: a fetch into the temporary
/// repository and a `git push` of one tag object on a commit the remote has. The push is
/// now one native connection (paths, git://, http://), and so is the read (below).
#[test]
fn locomotive_without_a_checkout_pushes_without_a_git_push_process() {
    for kind in [Kind::Bare, Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        let trig = "release=1.0=a.1";
        let (out, trace) = report_in(&env, env.root.path(), trig, "started");
        assert!(
            out.ok().contains(&format!("{trig}=started: created")),
            "{kind:?}"
        );
        assert!(
            !trace.contains("git push"),
            "{kind:?}: the state tag was pushed by a git push process:\n{trace}"
        );
        // A repeat is seen and not written twice; the next state follows.
        let (out, _) = report_in(&env, env.root.path(), trig, "started");
        assert!(out.ok().contains("already-recorded"), "{kind:?}");
        let (out, trace) = report_in(&env, env.root.path(), trig, "success");
        assert!(out.ok().contains(&format!("{trig}=success: created")));
        assert!(!trace.contains("git push"), "{kind:?}: {trace}");
        assert_eq!(env.step_state(&t, "a"), "success", "{kind:?}");
        env.server.git(&["fsck", "--no-dangling"]);
    }
}

/// The commit a tag on the server points to.
fn server_commit(env: &Env, tag: &str) -> String {
    env.server
        .git(&["rev-parse", &format!("{tag}^{{commit}}")])
        .trim()
        .to_string()
}

/// Without a checkout, a report ran `git fetch` into a temporary repository (5 processes)
/// before its push. Now one upload-pack conversation reads the trigger's and its states'
/// refs natively (a path remote is read in place): no `git fetch`, no `index-pack`, no
/// temporary repository.
#[test]
fn locomotive_without_a_checkout_runs_no_git_fetch() {
    for kind in [Kind::Bare, Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        let trig = "release=1.0=a.1";
        for state in ["started", "success"] {
            let (out, trace) = report_in(&env, env.root.path(), trig, state);
            assert!(
                out.ok().contains(&format!("{trig}={state}: created")),
                "{kind:?}"
            );
            assert!(
                !git_fetch_ran(&trace),
                "{kind:?}: a git fetch ran:\n{trace}"
            );
            assert!(!trace.contains("index-pack"), "{kind:?}: {trace}");
            assert!(!trace.contains("git push"), "{kind:?}: {trace}");
            // (A path is read in place; the others in one native conversation.)
            assert!(!trace.contains("upload-pack"), "{kind:?}: {trace}");
            // On the trigger's commit, an annotated tag with the usual message.
            let name = format!("{trig}={state}");
            assert_eq!(server_commit(&env, &name), server_commit(&env, trig));
            assert_eq!(env.server.git(&["cat-file", "-t", &name]).trim(), "tag");
            let msg = env.server.git(&["cat-file", "tag", &name]);
            assert!(msg.contains(&format!("{trig} {state}")), "{msg}");
        }
        assert_eq!(env.step_state(&t, "a"), "success", "{kind:?}");
        // The CI's Re-run after the end: re-run 1, still read natively.
        let (out, trace) = report_in(&env, env.root.path(), trig, "started");
        assert!(
            out.ok()
                .contains(&format!("{trig}=rerun.1=started: created")),
            "{kind:?}"
        );
        assert!(!git_fetch_ran(&trace), "{kind:?}: {trace}");
        // A trigger the remote doesn't have: the general path says so.
        let (out, _) = report_in(&env, env.root.path(), "release=1.0=zz.1", "started");
        out.fails(2, "does not exist");
        env.server.git(&["fsck", "--no-dangling"]);
    }
}

/// Racing reports without a checkout, on the native read and push: one tag, the others
/// find it taken.
#[test]
fn racing_reports_without_a_checkout_write_one_tag() {
    for kind in [Kind::Bare, Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        let trig = "release=1.0=a.1";
        let outs: Vec<Out> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| report_in_parallel(&env, trig, "started")))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(outs.iter().all(|o| o.code == 0), "{kind:?}: {outs:?}");
        let created = outs
            .iter()
            .filter(|o| o.stdout.contains(&format!("{trig}=started: created")))
            .count();
        let repeated = outs
            .iter()
            .filter(|o| {
                o.stdout
                    .contains(&format!("{trig}=started: already-recorded"))
            })
            .count();
        assert_eq!((created, repeated), (1, 3), "{kind:?}: {outs:?}");
        let tags: Vec<String> = env
            .tags("1.0")
            .into_iter()
            .filter(|t| t.starts_with(&format!("{trig}=")))
            .collect();
        assert_eq!(tags, [format!("{trig}=started")], "{kind:?}");
    }
}

/// `report_in` without the trace (several at once).
fn report_in_parallel(env: &Env, tag: &str, state: &str) -> Out {
    let mut c = env.cmd("locomotive");
    c.args([
        "set-step-state",
        "--state-name",
        state,
        "--triggering-tag",
        tag,
    ]);
    env.run_cmd(&mut c)
}

/// With `--allowed-signers` and no checkout, the tag objects come in the upload-pack
/// conversation (the train's commit as `have`: the pack holds the tags alone) and their
/// signatures are verified as on the general path: a signed report is read natively, a
/// forged trigger is refused.
#[test]
fn locomotive_without_a_checkout_verifies_signatures_without_git_fetch() {
    for kind in [Kind::Bare, Kind::Daemon, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let keys = env.root.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let (bot, bot_pub) = crate::signing::keygen(&keys, "bot");
        let (ci, ci_pub) = crate::signing::keygen(&keys, "ci");
        let (mallory, _) = crate::signing::keygen(&keys, "mallory");
        let allowed = keys.join("allowed_signers");
        std::fs::write(
            &allowed,
            format!("konductor@example.com {bot_pub}\nci@example.com {ci_pub}\n"),
        )
        .unwrap();
        let signed = |key: &Path, bin: &str, args: &[&str]| -> (Out, String) {
            let trace = env.root.path().join("git-trace-signed");
            let _ = std::fs::remove_file(&trace);
            let out = env.run_cmd(
                env.cmd(bin)
                    .env("GIT_TRACE", &trace)
                    .env("KONDUCTOR_SIGNING_KEY", key)
                    .env("KONDUCTOR_ALLOWED_SIGNERS", &allowed)
                    .args(args),
            );
            (out, std::fs::read_to_string(&trace).unwrap_or_default())
        };
        let t = signed(&bot, "konductor", &["start", "--sha", &env.sha])
            .0
            .ok()
            .trim()
            .to_string();
        signed(&bot, "konductor", &["tick", "--train", &t]).0.ok();
        let trig = "release=1.0=a.1";
        let report = |key: &Path, trigger: &str, state: &str| {
            signed(
                key,
                "locomotive",
                &[
                    "set-step-state",
                    "--state-name",
                    state,
                    "--triggering-tag",
                    trigger,
                ],
            )
        };
        // A started signed by an unlisted key is there: untrusted, it starts no run.
        let (out, _) = report(&mallory, trig, "started");
        out.ok();
        let (out, trace) = report(&ci, trig, "success");
        assert!(
            out.ok().contains(&format!("{trig}=success: created")),
            "{kind:?}"
        );
        assert!(
            !git_fetch_ran(&trace),
            "{kind:?}: a git fetch ran:\n{trace}"
        );
        let v = env.server.git(&[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
            "tag",
            "-v",
            &format!("{trig}=success"),
        ]);
        assert!(v.contains(&format!("{trig} success")), "{v}");
        // A trigger nobody allowed signed (written straight on the server): refused, and
        // nothing written.
        let commit = server_commit(&env, trig);
        env.server
            .git(&["tag", "-a", "-m", "forged", "release=1.0=a.9", &commit]);
        let (out, _) = report(&ci, "release=1.0=a.9", "started");
        out.fails(2, "is not signed by an allowed signer");
        assert!(
            env.tags("1.0")
                .iter()
                .all(|t| !t.starts_with("release=1.0=a.9=")),
            "{kind:?}"
        );
    }
}

/// ssh is not spoken natively: without a checkout the report takes the general path
/// (`git fetch` into a temporary repository) and is recorded as before.
#[test]
fn locomotive_without_a_checkout_over_ssh_falls_back_to_git_fetch() {
    let env = Env::new(Kind::Ssh, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let trig = "release=1.0=a.1";
    let (out, trace) = report_in(&env, env.root.path(), trig, "started");
    assert!(out.ok().contains(&format!("{trig}=started: created")));
    assert!(git_fetch_ran(&trace), "{trace}");
    let (out, trace) = report_in(&env, env.root.path(), trig, "success");
    assert!(out.ok().contains(&format!("{trig}=success: created")));
    assert!(git_fetch_ran(&trace), "{trace}");
    assert_eq!(env.step_state(&t, "a"), "success");
}
