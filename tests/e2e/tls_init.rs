//! libgit2's initialisation had OpenSSL parse the whole CA bundle (`SSL_CERT_FILE`) in every
//! `locomotive` run, a third of a report's time over a path, though a path, `git://` or ssh
//! remote never speaks TLS. These tests point `SSL_CERT_FILE` at a FIFO: whoever reads the
//! bundle opens it, and the test sees the open.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::harness::{Env, SMALL_SDD};
use crate::support::servers::{hermetic, Kind};

/// Run `c` with `SSL_CERT_FILE` pointing at a FIFO in `dir`; whether anything opened it to
/// read, and the command's stdout (the command must succeed).
fn reads_ca_bundle(env: &Env, dir: &Path, c: &mut Command) -> (bool, String) {
    let fifo = dir.join(format!("ca-bundle-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let mut mk = Command::new("mkfifo");
    hermetic(&mut mk, &env.home);
    assert!(mk.arg(&fifo).status().expect("mkfifo").success());
    let opened = Arc::new(AtomicBool::new(false));
    let writer = {
        let (fifo, opened) = (fifo.clone(), opened.clone());
        // Opening a FIFO to write blocks until a reader opens it: it returns when the
        // command reads the bundle (which then sees an empty file).
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&fifo);
            opened.store(true, Ordering::SeqCst);
            drop(f);
        })
    };
    let out = c.env("SSL_CERT_FILE", &fifo).output().expect("run");
    // A reader closes the FIFO only after the writer's open returned and the flag was set.
    let read = opened.load(Ordering::SeqCst);
    if !read {
        // Nobody read it: meet the writer ourselves, so that its thread ends.
        let _ = std::fs::File::open(&fifo);
    }
    writer.join().expect("writer thread");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (read, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn report(env: &Env, dir: &Path, trig: &str, state: &str) -> (bool, String) {
    let mut c = env.cmd("locomotive");
    c.current_dir(dir).args([
        "set-step-state",
        "--state-name",
        state,
        "--triggering-tag",
        trig,
    ]);
    reads_ca_bundle(env, env.root.path(), &mut c)
}

/// Run git with the test's hermetic environment.
fn git(env: &Env, args: &[&str]) {
    let mut g = Command::new("git");
    hermetic(&mut g, &env.home);
    assert!(
        g.args(args).status().expect("git").success(),
        "git {args:?}"
    );
}

/// A CI job's checkout of the trigger tag.
fn checkout(env: &Env, trig: &str) -> std::path::PathBuf {
    let co = env.root.path().join("co");
    let dir = co.to_str().unwrap();
    git(env, &["clone", "-q", "--no-tags", &env.server.url, dir]);
    let spec = format!("refs/tags/{trig}:refs/tags/{trig}");
    git(env, &["-C", dir, "fetch", "-q", "origin", &spec]);
    co
}

#[test]
fn locomotive_reads_no_ca_bundle_for_a_remote_without_tls() {
    for kind in [Kind::Bare, Kind::Daemon] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        // From a checkout (one native push)…
        let co = checkout(&env, "release=1.0=a.1");
        let (read, out) = report(&env, &co, "release=1.0=a.1", "started");
        assert!(out.contains("release=1.0=a.1=started: created"), "{out}");
        assert!(!read, "{kind:?}: the CA bundle was read from a checkout");
        // …and without one (a temporary repository, a fetch, a push).
        let (read, out) = report(&env, env.root.path(), "release=1.0=b.1", "started");
        assert!(out.contains("release=1.0=b.1=started: created"), "{out}");
        assert!(!read, "{kind:?}: the CA bundle was read without a checkout");
        assert_eq!(env.step_state(&t, "a"), "started");
        assert_eq!(env.step_state(&t, "b"), "started");
    }
}

#[test]
fn locomotive_still_loads_the_ca_bundle_for_an_http_remote() {
    // http:// may be redirected to https://, so its libgit2 keeps the roots. (This is also
    // what shows that the FIFO test above can see a read.)
    let env = Env::new(Kind::Http, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    let (read, out) = report(&env, env.root.path(), "release=1.0=a.1", "started");
    assert!(out.contains("release=1.0=a.1=started: created"), "{out}");
    assert!(read, "the CA bundle was not read for an http remote");
}
