//! Signed state: tags signed with SSH keys in git's own format, verified against an
//! allowed-signers file; unsigned or unlisted tags never move a train.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{publish_args, step_of, Env, Out};
use crate::support::servers::Kind;

const SDD: &str = "a: []\ngate: {needs: [a], manual: true, approvers: [te@example.com]}\nb: [gate]\ndone: {needs: [b], virtual: true}\n";

pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut parts = public.split_whitespace();
    (
        key,
        format!("{} {}", parts.next().unwrap(), parts.next().unwrap()),
    )
}

/// Run `bin` signing with `key` and trusting only `allowed`.
fn signed(env: &Env, key: &Path, allowed: &Path, bin: &str, args: &[&str]) -> Out {
    env.run_cmd(
        env.cmd(bin)
            .env("KONDUCTOR_SIGNING_KEY", key)
            .env("KONDUCTOR_ALLOWED_SIGNERS", allowed)
            .args(args),
    )
}

#[test]
fn only_tags_signed_by_allowed_signers_move_a_train() {
    let env = Env::new(Kind::Daemon, SDD);
    let keys = env.root.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (bot, bot_pub) = keygen(&keys, "bot");
    let (ci, ci_pub) = keygen(&keys, "ci");
    let (_te, te_pub) = keygen(&keys, "te");
    let (mallory, _) = keygen(&keys, "mallory");
    let allowed = keys.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "konductor@example.com {bot_pub}\nci@example.com {ci_pub}\nte@example.com {te_pub}\n"
        ),
    )
    .unwrap();
    let run = |bin: &str, key: &Path, args: &[&str]| signed(&env, key, &allowed, bin, args);
    let t = run("konductor", &bot, &["start", "--sha", &env.sha])
        .ok()
        .trim()
        .to_string();
    assert!(run("konductor", &bot, &["tick", "--train", &t])
        .ok()
        .contains("trigger release=1.0=a.1"));
    // Real git verifies what konductor signed.
    let v = env.server.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
        "tag",
        "-v",
        "release=1.0=a.1",
    ]);
    assert!(v.contains("release=1.0=a.1"), "{v}");

    // Mallory's success (signed by an unlisted key), and an unsigned one, are ignored.
    let report = |key: &Path, state: &str| {
        run(
            "locomotive",
            key,
            &[
                "set-step-state",
                "--state-name",
                state,
                "--triggering-tag",
                "release=1.0=a.1",
            ],
        )
    };
    report(&mallory, "started").ok();
    let s: serde_json::Value =
        serde_json::from_str(&run("konductor", &bot, &["status", "--train", &t, "--json"]).ok())
            .unwrap();
    assert_eq!(step_of(&s, "a")["state"], "triggered", "{s}");
    assert!(
        s["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("ignored `release=1.0=a.1=started`")),
        "{s}"
    );
    let unsigned = env.run_cmd(env.cmd("locomotive").args([
        "set-step-state",
        "--state-name",
        "success",
        "--triggering-tag",
        "release=1.0=a.1",
    ]));
    assert_eq!(
        unsigned.code, 0,
        "an unsigned report is written ... {unsigned:?}"
    );
    assert!(
        run("konductor", &bot, &["tick", "--train", &t])
            .ok()
            .contains("running (nothing to do)"),
        "... but moves nothing"
    );

    // The CI's signed report counts... except the name `a.1=success` is taken by the
    // unsigned tag: locomotive with verification on refuses to call that recorded.
    let out = report(&ci, "success");
    assert_ne!(out.code, 0, "{out:?}");
    // Retry as a new attempt, reported by the CI with its key.
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let out = env
        .run_cmd(
            env.cmd("konductor")
                .env("KONDUCTOR_SIGNING_KEY", &bot)
                .env("KONDUCTOR_ALLOWED_SIGNERS", &allowed)
                .env("KONDUCTOR_NOW", &later)
                .args(["tick", "--train", &t]),
        )
        .ok();
    assert!(out.contains("trigger release=1.0=a.2"), "{out}");
    run(
        "locomotive",
        &ci,
        &[
            "set-step-state",
            "--state-name",
            "success",
            "--triggering-tag",
            "release=1.0=a.2",
        ],
    )
    .ok();
    run("konductor", &bot, &["tick", "--train", &t]).ok();
    let state = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(
            &run("konductor", &bot, &["status", "--train", &t, "--json"]).ok(),
        )
        .unwrap();
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == s)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("a"), "success");
    assert_eq!(state("gate"), "blocked");

    // The gate: an unblock claiming to be te@example.com but signed by the bot's key is
    // ignored: approvers are checked against the verified signer.
    run(
        "konductor",
        &bot,
        &[
            "unblock",
            "--train",
            &t,
            "--step",
            "gate",
            "--by",
            "te@example.com",
        ],
    )
    .ok();
    assert_eq!(state("gate"), "blocked");
    let v: serde_json::Value =
        serde_json::from_str(&run("konductor", &bot, &["status", "--train", &t, "--json"]).ok())
            .unwrap();
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("ignored unblock of `gate` by konductor@example.com")),
        "{v}"
    );
    // Without verification, the same tag would count: verification is what protects the gate.
    let plain: serde_json::Value =
        serde_json::from_str(&env.k(&["status", "--train", &t, "--json"]).ok()).unwrap();
    assert_eq!(
        plain["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "gate")
            .unwrap()["state"],
        "success"
    );
}

/// A one-step train on a bare path, with a `keys` directory holding the ticker's key
/// ("bot"): the env, that directory, the private key and its public half.
fn one_step_env_with_bot_key() -> (Env, PathBuf, PathBuf, String) {
    let env = Env::new(Kind::Bare, "a: []\ndone: {needs: [a], virtual: true}\n");
    let keys = env.root.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (bot, bot_pub) = keygen(&keys, "bot");
    (env, keys, bot, bot_pub)
}

/// Revoking a key takes effect at once: a verification remembered in the cache is only
/// reused with the same allowed-signers file.
#[test]
fn a_revoked_key_stops_counting_on_a_warm_cache() {
    let (env, keys, bot, bot_pub) = one_step_env_with_bot_key();
    let (ci, ci_pub) = keygen(&keys, "ci");
    let allowed = keys.join("allowed_signers");
    let trust = |ci_too: bool| {
        let mut s = format!("konductor@example.com {bot_pub}\n");
        if ci_too {
            s.push_str(&format!("ci@example.com {ci_pub}\n"));
        }
        std::fs::write(&allowed, s).unwrap();
    };
    let run = |key: &Path, bin: &str, args: &[&str]| signed(&env, key, &allowed, bin, args);
    let step_a = || {
        let s: serde_json::Value = serde_json::from_str(
            &run(&bot, "konductor", &["status", "--train", "1.0", "--json"]).ok(),
        )
        .unwrap();
        (
            step_of(&s, "a")["state"].as_str().unwrap().to_string(),
            s["warnings"].to_string(),
        )
    };
    trust(true);
    run(&bot, "konductor", &["start", "--sha", &env.sha]).ok();
    run(&bot, "konductor", &["tick"]).ok();
    run(
        &ci,
        "locomotive",
        &[
            "set-step-state",
            "--state-name",
            "success",
            "--triggering-tag",
            "release=1.0=a.1",
        ],
    )
    .ok();
    assert_eq!(step_a().0, "success", "the CI's key is trusted");
    trust(false);
    let (state, warnings) = step_a();
    assert_eq!(
        state, "triggered",
        "the revoked key's report no longer counts"
    );
    assert!(
        warnings.contains("ignored `release=1.0=a.1=success`"),
        "{warnings}"
    );
    trust(true);
    assert_eq!(step_a().0, "success", "trusted again");
}

/// With verification on, `publish-manifests` moves a deploy tag only for a trigger that an
/// allowed signer signed.
#[test]
fn a_deploy_needs_a_signed_trigger() {
    let (env, keys, bot, bot_pub) = one_step_env_with_bot_key();
    let allowed = keys.join("allowed_signers");
    std::fs::write(&allowed, format!("konductor@example.com {bot_pub}\n")).unwrap();
    let dir = env.root.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.yaml"), "replicas: 1\n").unwrap();
    let deploy = |trigger: &str| {
        signed(
            &env,
            &bot,
            &allowed,
            "locomotive",
            &publish_args(&dir, "staging-k8s", trigger),
        )
    };
    // Train 1 is the bot's, signed; train 2 was opened and ticked without a key.
    signed(
        &env,
        &bot,
        &allowed,
        "konductor",
        &["start", "--sha", &env.sha],
    )
    .ok();
    signed(
        &env,
        &bot,
        &allowed,
        "konductor",
        &["tick", "--train", "1.0"],
    )
    .ok();
    env.k(&["start", "--sha", &env.sha]).ok();
    env.k(&["tick", "--train", "2.0"]).ok();
    assert!(deploy("release=1.0=a.1").ok().starts_with("staging-k8s: "));
    let body = env.server.git(&["log", "-1", "--format=%B", "staging-k8s"]);
    assert!(body.contains(&format!("source: {}", env.sha)), "{body}");
    deploy("release=1.0=a.9").fails(2, "`release=1.0=a.9` does not exist");
    let before = env.server.git(&["rev-parse", "staging-k8s"]);
    deploy("release=2.0=a.1").fails(2, "`release=2.0=a.1` is not signed by an allowed signer");
    assert_eq!(
        env.server.git(&["rev-parse", "staging-k8s"]),
        before,
        "the deploy tag did not move"
    );
}
