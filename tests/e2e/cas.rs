//! Compare-and-swap pushes compare (issue 19): a writer that read a ref and then lost a
//! race to another writer is refused, and the other writer's value stays.
//!
//! The race is made deterministic with an interposed `git` (`KONDUCTOR_GIT`): right
//! before the real push of the ref, it runs the other writer to completion. Before the
//! fix, `push_ref_cas` pushed `+new:ref` with `--force-with-lease`, and the `+` forced the
//! update over whatever the other writer had published.

use std::path::{Path, PathBuf};

use crate::harness::{publish_args, Env, Out, SMALL_SDD};
use crate::support::servers::Kind;

/// A `git` that runs `before` once, right before the first invocation whose arguments
/// contain `needle`, then runs the real git. `before` gets its own cache directory so that
/// it does not wait for the interrupted process's cache lock.
pub struct Interposer {
    pub script: PathBuf,
    pub once: PathBuf,
    pub log: PathBuf,
}

impl Interposer {
    pub fn new(root: &Path, name: &str) -> Interposer {
        let script = root.join(format!("{name}-git.sh"));
        std::fs::write(
            &script,
            "#!/bin/bash\n\
             if [[ ! -e \"$WRAP_ONCE\" && \" $* \" == *\"$WRAP_MATCH\"* ]]; then\n\
             \x20 : > \"$WRAP_ONCE\"\n\
             \x20 env -u KONDUCTOR_GIT bash -c \"$WRAP_BEFORE\" >>\"$WRAP_LOG\" 2>&1 || echo \"before: exit $?\" >>\"$WRAP_LOG\"\n\
             fi\n\
             exec git \"$@\"\n",
        )
        .unwrap();
        let mut perm = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&script, perm).unwrap();
        Interposer {
            script,
            once: root.join(format!("{name}.once")),
            log: root.join(format!("{name}.log")),
        }
    }

    /// Run `cmd` with the interposed git: `before` (a shell command) runs right before the
    /// first git call whose arguments contain `needle`.
    pub fn run(
        &self,
        env: &Env,
        cmd: &mut std::process::Command,
        needle: &str,
        before: &str,
    ) -> Out {
        cmd.env("KONDUCTOR_GIT", &self.script)
            .env("WRAP_ONCE", &self.once)
            .env("WRAP_LOG", &self.log)
            .env("WRAP_MATCH", needle)
            .env("WRAP_BEFORE", before);
        let out = env.run_cmd(cmd);
        assert!(
            self.once.exists(),
            "the interposed git never saw `{needle}`: {out:?}"
        );
        out
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A shell command line that runs `bin args…` with its own cache.
pub fn other_writer(env: &Env, bin: &str, args: &[&str]) -> String {
    let mut line = format!(
        "KONDUCTOR_CACHE_DIR='{}' '{}'",
        env.root.path().join("other-cache").display(),
        assert_cmd::cargo::cargo_bin(bin).display()
    );
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    line
}

fn manifests(env: &Env, name: &str, body: &str) -> PathBuf {
    let dir = env.root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), body).unwrap();
    dir
}

fn deploy_files(env: &Env, tag: &str) -> Vec<String> {
    env.server
        .git(&["log", "--format=%H", tag])
        .lines()
        .map(|c| env.server.git(&["show", &format!("{c}:app.yaml")]))
        .collect()
}

fn publish_loses_to(env: &Env, previous: Option<&str>) {
    let tag = "k8s-production";
    if let Some(body) = previous {
        let dir = manifests(env, "m0", body);
        env.l(&publish_args(&dir, tag, "release=1.0=b.1")).ok();
    }
    let mine = manifests(env, "m1", "writer: mine\n");
    let theirs = manifests(env, "m2", "writer: theirs\n");
    let wrap = Interposer::new(env.root.path(), "publish");
    let mut cmd = env.cmd("locomotive");
    cmd.args(publish_args(&mine, tag, "release=1.0=b.1"));
    let out = wrap.run(
        env,
        &mut cmd,
        &format!("--force-with-lease=refs/tags/{tag}:"),
        &other_writer(
            env,
            "locomotive",
            &publish_args(&theirs, tag, "release=1.0=b.1"),
        ),
    );
    assert_eq!(
        out.code,
        5,
        "the writer whose lease went stale is a conflict (exit 5)\n{out:?}\nother writer: {}",
        wrap.log()
    );
    assert!(
        out.stderr.contains("moved on") && out.stderr.contains("nothing was overwritten"),
        "{out:?}"
    );
    let mut want = vec!["writer: theirs\n".to_string()];
    want.extend(previous.map(str::to_string));
    assert_eq!(
        deploy_files(env, tag),
        want,
        "the other writer's deploy stays on top, chained; mine is not there\nother writer: {}",
        wrap.log()
    );
}

#[test]
fn cas_push_with_plus_overwrote_a_deploy_tag_created_meanwhile() {
    let env = Env::new(Kind::Daemon, SMALL_SDD);
    let t = env.start();
    env.tick(&t);
    publish_loses_to(&env, None);
}

#[test]
fn cas_push_with_plus_overwrote_a_deploy_tag_moved_meanwhile() {
    for kind in [Kind::Bare, Kind::Http] {
        let env = Env::new(kind, SMALL_SDD);
        let t = env.start();
        env.tick(&t);
        publish_loses_to(&env, Some("writer: first\n"));
    }
}

const TINY: &str = "a: []\ndone: {needs: [a], virtual: true}\n";

#[test]
fn racing_gc_runs_overwrote_each_others_archive() {
    let env = Env::new(Kind::Daemon, TINY);
    for _ in 0..4 {
        let t = env.start();
        env.tick(&t);
        env.report(&format!("release={t}=a.1"), "success").ok();
    }
    // This gc keeps 3 finished trains (archives 1.0); the other one, which runs to the end
    // in between, keeps 1 (archives 1.0, 2.0 and 3.0, and deletes their tags).
    let wrap = Interposer::new(env.root.path(), "gc");
    let mut cmd = env.cmd("konductor");
    cmd.args(["gc", "--keep", "3"]);
    let out = wrap.run(
        &env,
        &mut cmd,
        "--force-with-lease=refs/konductor/archive:",
        &other_writer(&env, "konductor", &["gc", "--keep", "1"]),
    );
    assert!(wrap.log().contains("archived 3 train(s)"), "{}", wrap.log());
    assert_eq!(
        out.code, 5,
        "the gc that lost the archive race is a conflict: {out:?}"
    );
    assert!(out.stderr.contains("nothing was overwritten"), "{out:?}");
    // Every train whose tags are gone has its record at the archive's tip.
    for t in ["1.0", "2.0", "3.0"] {
        assert!(env.tags(t).is_empty(), "{t} was collected");
        let rec = env
            .server
            .git(&["show", &format!("refs/konductor/archive:trains/{t}.json")]);
        assert!(
            rec.contains(&format!("release={t}=a.1=success")),
            "{t}: {rec}"
        );
    }
    assert_eq!(env.tags("4.0").len(), 3);
    // A later run finds nothing to do and status still reads the archived trains.
    let again = env.k(&["gc", "--keep", "3"]).ok();
    assert!(again.contains("archived 0 train(s)"), "{again}");
    assert_eq!(env.step_state("2.0", "a"), "success");
}

/// Three trains: 1.0 failed (no retries), 2.0 and 3.0 succeeded. `gc --keep 1` archives
/// 1.0 and 2.0; a `konductor retry` of 1.0's step `a` lands at `point`.
fn retry_races_gc(point: &str) -> (Env, Out, String) {
    let env = Env::new(
        Kind::Daemon,
        "a: {needs: [], retries: 0}\ndone: {needs: [a], virtual: true}\n",
    );
    for (i, state) in ["failure", "success", "success"].iter().enumerate() {
        let t = env.start();
        assert_eq!(t, format!("{}.0", i + 1));
        env.tick(&t);
        env.report(&format!("release={t}=a.1"), state).ok();
    }
    assert_eq!(env.status("1.0")["state"], "failed");
    let wrap = Interposer::new(env.root.path(), "gc");
    let mut cmd = env.cmd("konductor");
    // The CLI delete path, so that the interposed git sees each delete push.
    cmd.args(["gc", "--keep", "1"])
        .env("KONDUCTOR_DELETE_WITH_GIT", "1");
    let out = wrap.run(
        &env,
        &mut cmd,
        point,
        &other_writer(
            &env,
            "konductor",
            &["retry", "--train", "1.0", "--step", "a"],
        ),
    );
    let retry = wrap.log();
    (env, out, retry)
}

/// The train came back whole: every tag it had, plus the retry's trigger; the retry runs.
fn assert_train_kept(env: &Env, gc: &Out, retry: &str) {
    assert!(
        retry.contains("release=1.0=a.2"),
        "the retry went through: {retry}"
    );
    assert!(!retry.contains("before: exit"), "{retry}");
    assert_eq!(gc.code, 0, "{gc:?}");
    assert!(
        gc.stdout.contains("1.0") && gc.stdout.contains("became live while gc worked"),
        "{gc:?}"
    );
    let mut tags = env.tags("1.0");
    tags.sort();
    assert_eq!(
        tags,
        [
            "release=1.0",
            "release=1.0=a.1",
            "release=1.0=a.1=failure",
            "release=1.0=a.2"
        ]
    );
    assert!(env.tags("2.0").is_empty(), "2.0 was collected");
    env.report("release=1.0=a.2", "success").ok();
    assert_eq!(env.status("1.0")["state"], "succeeded");
}

#[test]
fn retry_racing_gc_before_its_recheck_keeps_the_train() {
    let (env, gc, retry) = retry_races_gc("--force-with-lease=refs/konductor/archive:");
    assert_train_kept(&env, &gc, &retry);
}

#[test]
fn retry_racing_gc_between_recheck_and_delete_gets_the_train_tag_back() {
    let (env, gc, retry) = retry_races_gc(" :refs/tags/release=1.0 ");
    assert!(gc.stdout.contains("train tag restored"), "{gc:?}");
    assert_train_kept(&env, &gc, &retry);
}

#[test]
fn retry_racing_gc_after_delete_is_withdrawn_and_told() {
    // The other way round: the retry has read its train, and a whole gc runs right before
    // its push. gc saw no new tag and collected 1.0; the retry's trigger then lands on a
    // train that is gone.
    let env = Env::new(
        Kind::Daemon,
        "a: {needs: [], retries: 0}\ndone: {needs: [a], virtual: true}\n",
    );
    for state in ["failure", "success", "success"] {
        let t = env.start();
        env.tick(&t);
        env.report(&format!("release={t}=a.1"), state).ok();
    }
    let wrap = Interposer::new(env.root.path(), "retry");
    let mut cmd = env.cmd("konductor");
    cmd.args(["retry", "--train", "1.0", "--step", "a"]);
    let out = wrap.run(
        &env,
        &mut cmd,
        ":refs/tags/release=1.0=a.2",
        &other_writer(&env, "konductor", &["gc", "--keep", "1"]),
    );
    assert!(wrap.log().contains("archived 2 train(s)"), "{}", wrap.log());
    assert_eq!(out.code, 5, "the retry lost and is told: {out:?}");
    assert!(
        out.stderr
            .contains("archived by a concurrent `konductor gc`")
            && out.stderr.contains("`release=1.0=a.2` was withdrawn"),
        "{out:?}"
    );
    assert!(
        env.tags("1.0").is_empty(),
        "nothing of 1.0 is left, not even the trigger"
    );
    let rec = env
        .server
        .git(&["show", "refs/konductor/archive:trains/1.0.json"]);
    assert!(rec.contains("release=1.0=a.1=failure"), "{rec}");
    assert_eq!(env.status("1.0")["state"], "failed");
    // A retry that starts after the collection is refused up front.
    env.k(&["retry", "--train", "1.0", "--step", "a"])
        .fails(2, "archived");
}
