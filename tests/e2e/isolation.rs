//! One failure must not hide or stop the rest: a push a server hook rejects, a cancel that
//! lands while a tick runs, a cache on a full disk, a transport that would run a command.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use crate::harness::Env;
use crate::support::servers::{Kind, HTTP_PASS};

const THREE_LEAVES: &str = "a: []\nb: []\nc: []\ndone: {needs: [a, b, c], virtual: true}\n";

fn hook(env: &Env, name: &str, body: &str) {
    let p = env.server.bare.join("hooks").join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn triggers(env: &Env, t: &str) -> Vec<String> {
    env.tags(t)
        .into_iter()
        .filter(|x| x.matches('=').count() == 2 && !x.ends_with("=cancelled"))
        .collect()
}

#[test]
fn one_rejected_push_does_not_starve_the_rest_of_the_tick() {
    let env = Env::new(Kind::Http, THREE_LEAVES);
    let one = env.start();
    let two = env.start();
    assert_eq!((one.as_str(), two.as_str()), ("1.0", "2.0"));
    // The hook refuses exactly one trigger, with a reason, a line that carries the
    // client's secret (it must come back redacted), and far too much more.
    hook(
        &env,
        "pre-receive",
        &format!(
            "while read old new ref; do\n  case \"$ref\" in\n    refs/tags/release=1.0=b.1)\n      \
             echo 'policy: step b is frozen until Monday'\n      echo 'token {HTTP_PASS} seen'\n      \
             seq 1 5000 | sed 's/^/filler /'\n      exit 1 ;;\n  esac\ndone\nexit 0\n"
        ),
    );
    let out = env.k(&["tick"]);
    assert_eq!(out.code, 3, "a failed push exits 3: {out:?}");
    // Everything else was done: the other triggers of train 1.0 and all of train 2.0.
    assert_eq!(
        triggers(&env, "1.0"),
        ["release=1.0=a.1", "release=1.0=c.1"]
    );
    assert_eq!(
        triggers(&env, "2.0"),
        ["release=2.0=a.1", "release=2.0=b.1", "release=2.0=c.1"]
    );
    for created in ["release=1.0=a.1", "release=1.0=c.1", "release=2.0=b.1"] {
        assert!(
            out.stdout
                .contains(&format!("{created} (dependencies done): created")),
            "{created} not listed: {out:?}"
        );
    }
    assert!(
        out.stdout
            .contains("trigger release=1.0=b.1 (dependencies done): failed"),
        "{out:?}"
    );
    // The server's own reason, redacted and bounded.
    assert!(
        out.stderr.contains("policy: step b is frozen until Monday"),
        "{out:?}"
    );
    assert!(out.stderr.contains("token *** seen"), "{out:?}");
    assert!(!out.stderr.contains(HTTP_PASS), "{out:?}");
    assert!(out.stderr.contains("more lines)"), "{out:?}");
    assert!(
        out.stderr.len() < 3000,
        "{} bytes of stderr",
        out.stderr.len()
    );

    // The same in JSON; the next tick retries only what failed.
    let out = env.k(&["tick", "--json"]);
    assert_eq!(out.code, 3, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("tick --json");
    let t1 = &v["trains"].as_array().unwrap()[0];
    assert_eq!(t1["train"], "1.0");
    let actions = t1["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{v}");
    assert_eq!(actions[0]["tag"], "release=1.0=b.1");
    assert_eq!(actions[0]["outcome"], "failed");
    let why = actions[0]["error"].as_str().unwrap();
    assert!(why.contains("pre-receive hook declined"), "{why}");
    assert!(
        why.contains("policy: step b is frozen until Monday"),
        "{why}"
    );
    assert!(v.get("stopped").is_none(), "{v}");
}

#[test]
fn a_cancel_landing_during_a_tick_stops_its_remaining_triggers() {
    let env = Env::new(Kind::Daemon, THREE_LEAVES);
    let t = env.start();
    // The cancel lands on the server right after the tick's first push, as a
    // `konductor cancel` racing the tick would.
    hook(
        &env,
        "post-receive",
        "while read old new ref; do\n  case \"$ref\" in\n    refs/tags/release=1.0=?.1)\n      \
         git rev-parse --verify -q refs/tags/release=1.0=cancelled >/dev/null ||\n      \
         git update-ref refs/tags/release=1.0=cancelled \"$(git rev-parse \"$new^{commit}\")\" ;;\n  \
         esac\ndone\nexit 0\n",
    );
    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        triggers(&env, &t).len(),
        1,
        "only the push before the cancel: {out:?}"
    );
    assert_eq!(out.stdout.matches(": cancelled").count(), 2, "{out:?}");
    assert!(
        out.stderr.contains("was cancelled while this tick ran"),
        "{out:?}"
    );
    // And the train stays cancelled: nothing more is triggered.
    assert!(env.tick(&t).contains("cancelled (nothing to do)"));
    assert_eq!(triggers(&env, &t).len(), 1);
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` when not root: mounting needs it (this test then says so and proves nothing).
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "root but cannot mount a tmpfs on {dir:?}");
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Create `n` junk tags `release=1.0=s<i>.1` on the server (lightweight, on the commit).
fn junk_tags(env: &Env, n: usize) {
    let sha = env.sha.clone();
    let refs: String = (0..n)
        .map(|i| format!("create refs/tags/release=1.0=s{i}.1 {sha}\n"))
        .collect();
    crate::support::servers::git_stdin(
        &env.server.bare,
        &["update-ref", "--stdin"],
        refs.as_bytes(),
    );
}

#[test]
fn a_full_cache_disk_is_a_short_local_error_not_a_remote_failure() {
    let env = Env::new(Kind::Daemon, THREE_LEAVES);
    let t = env.start();
    // 3,000 tags of train 1.0: their loose refs alone need 12 MB of tmpfs pages.
    junk_tags(&env, 3000);
    let cache = env.root.path().join("small-disk");
    let Some(_disk) = Tmpfs::mount(&cache, "1m") else {
        eprintln!("skipped: not root, cannot mount a tmpfs to fill");
        return;
    };
    let out = env.run_cmd(
        env.cmd("konductor")
            .env("KONDUCTOR_CACHE_DIR", &cache)
            .args(["status", "--train", &t]),
    );
    assert_eq!(out.code, 2, "a local I/O error: {out:?}");
    assert!(out.stderr.contains("No space left on device"), "{out:?}");
    assert!(out.stderr.contains("cannot write the cache"), "{out:?}");
    assert!(
        out.stderr.len() < 3000,
        "{} bytes: {out:?}",
        out.stderr.len()
    );
}

#[test]
fn the_git_cli_never_runs_a_remote_helper_even_when_config_allows_it() {
    let env = Env::new(Kind::Bare, THREE_LEAVES);
    let t = env.start();
    // A config that rewrites the remote's URL to `ext::` and allows `ext`: what a hostile
    // or careless global config could do. The git CLI must still refuse to run it.
    let pwned = env.root.path().join("pwned");
    let cfg = env.root.path().join("hostile.gitconfig");
    let url = format!("file://{}", env.server.bare.display());
    std::fs::write(
        &cfg,
        format!(
            "[protocol \"ext\"]\n\tallow = always\n[url \"ext::sh -c touch% {}% #\"]\n\tinsteadOf = {url}\n",
            pwned.display()
        ),
    )
    .unwrap();
    // The control: git itself does run the helper with this config.
    let st = Command::new("git")
        .env("GIT_CONFIG_GLOBAL", &cfg)
        .args(["ls-remote", &url])
        .output()
        .unwrap();
    assert!(pwned.exists(), "the control did not run ext:: {st:?}");
    std::fs::remove_file(&pwned).unwrap();
    let out = env.run_cmd(
        env.cmd("konductor")
            .env("GIT_CONFIG_GLOBAL", &cfg)
            .env("KONDUCTOR_REMOTE", &url)
            .args(["status", "--train", &t]),
    );
    assert!(!pwned.exists(), "the ext:: command ran: {out:?}");
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("transport 'ext' not allowed"),
        "{out:?}"
    );
}

#[test]
fn thousands_of_fetched_tags_are_packed_not_left_as_loose_files() {
    let env = Env::new(Kind::Daemon, THREE_LEAVES);
    let t = env.start();
    junk_tags(&env, 2000);
    let out = env.k(&["status", "--train", &t]);
    assert_eq!(out.code, 0, "{out:?}");
    let repo = std::fs::read_dir(&env.cache)
        .unwrap()
        .map(|e| e.unwrap().path().join("repo.git"))
        .find(|p| p.is_dir())
        .expect("the cache repository");
    let loose = walk_files(&repo.join("refs/tags"));
    assert!(loose < 500, "{loose} loose tag refs left in the cache");
    let packed = std::fs::read_to_string(repo.join("packed-refs")).expect("packed-refs");
    assert!(
        packed.contains("refs/tags/release=1.0=s1999.1"),
        "not packed"
    );
    // Still read the same: a tick after packing sees the junk and triggers the train.
    let out = env.k(&["tick", "--train", &t]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(triggers(&env, &t).len(), 2000 + 3);
}

fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { walk_files(&p) } else { 1 })
            .sum()
    })
}
