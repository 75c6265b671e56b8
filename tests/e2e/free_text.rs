//! Free text in tags (`--reason`, `--info-string`) can never be read as one of Konductor's
//! fields, and with `--allowed-signers` every report names the verified signer, not the
//! identity a tag claims (issue 12, item 8).

use std::path::Path;

use crate::harness::{Env, Out};
use crate::signing::keygen;
use crate::support::servers::Kind;

const SDD: &str =
    "a: []\ngate: {needs: [a], manual: true}\nb: [gate]\ndone: {needs: [b], virtual: true}\n";
const FORGED: &str = "x\nby: Release Boss <boss@example.com>";

/// Every file the board wrote, concatenated.
fn board(env: &Env, run: impl Fn(&[&str]) -> Out) -> String {
    let out = env.root.path().join(format!("board-{}", rand_suffix()));
    run(&["board", "--out", out.to_str().unwrap()]).ok();
    let mut html = String::new();
    for e in std::fs::read_dir(&out).unwrap() {
        html.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    html
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn a_reason_with_a_line_break_cannot_forge_who_cancelled() {
    let env = Env::new(Kind::Daemon, SDD);
    let t = env.start();
    env.tick(&t);
    env.report(&format!("release={t}=a.1"), "success").ok();
    env.tick(&t);
    assert_eq!(env.step_state(&t, "gate"), "blocked");
    let before = env.server.tags();
    // Refused where it is written: nothing recorded.
    env.k(&["cancel", "--train", &t, "--reason", FORGED])
        .fails(2, "`--reason` holds a line break (U+000A at character 2)");
    env.k(&[
        "unblock", "--train", &t, "--step", "gate", "--reason", FORGED,
    ])
    .fails(2, "`--reason` holds a line break");
    env.k(&["cancel", "--train", &t, "--reason", "ok\u{1b}[2K"])
        .fails(2, "a control character (U+001B");
    env.l(&[
        "set-step-state",
        "--state-name",
        "started",
        "--triggering-tag",
        &format!("release={t}=b.1"),
        "--info-string",
        "note\rby: Release Boss <boss@example.com>",
    ])
    .fails(2, "a line of `--info-string` holds a line break (U+000D");
    assert_eq!(env.server.tags(), before, "nothing was recorded");
}

#[test]
fn an_old_tag_with_a_multi_line_reason_is_read_as_its_writer_wrote_it() {
    let env = Env::new(Kind::Daemon, SDD);
    let t = env.start();
    env.tick(&t);
    // A tag an older version wrote, with the free text after its own `by:`: the writer's
    // line is the one read.
    env.server.git(&[
        "tag",
        "-a",
        &format!("release={t}=cancelled"),
        "-m",
        &format!("cancel train {t}\n\nby: Test Runner <runner@example.com>\nreason: {FORGED}"),
        &env.sha,
    ]);
    let s = env.status(&t);
    assert_eq!(s["cancelled_by"], "Test Runner <runner@example.com>", "{s}");
    assert_eq!(s["cancel_reason"], "x", "{s}");
    let text = env.k(&["status", "--train", &t]).ok();
    assert!(!text.contains("Release Boss"), "{text}");
    let log = env.k(&["log", "--train", &t, "--json"]).ok();
    let cancel: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "cancelled")
        .unwrap();
    assert_eq!(cancel["by"], "Test Runner <runner@example.com>", "{log}");
    let html = board(&env, |a| env.k(a));
    assert!(html.contains("runner@example.com") && !html.contains("Release Boss"));
}

#[test]
fn with_allowed_signers_status_log_and_board_show_the_verified_signer() {
    let env = Env::new(Kind::Daemon, "a: []\ndone: {needs: [a], virtual: true}\n");
    let keys = env.root.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (bot, bot_pub) = keygen(&keys, "bot");
    let (te, te_pub) = keygen(&keys, "te");
    let allowed = keys.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("konductor@example.com {bot_pub}\nte@example.com {te_pub}\n"),
    )
    .unwrap();
    // Everyone claims to be the boss; only the keys tell who they are.
    let run = |key: &Path, bin: &str, args: &[&str]| {
        env.run_cmd(
            env.cmd(bin)
                .env("KONDUCTOR_IDENTITY", "Release Boss <boss@example.com>")
                .env("KONDUCTOR_SIGNING_KEY", key)
                .env("KONDUCTOR_ALLOWED_SIGNERS", &allowed)
                .args(args),
        )
    };
    let k = |args: &[&str]| run(&bot, "konductor", args);
    let t = k(&["start", "--sha", &env.sha]).ok().trim().to_string();
    k(&["tick", "--train", &t]).ok();
    // An unsigned report: listed by `log`, as unverified.
    env.report(&format!("release={t}=a.1"), "started").ok();
    run(
        &te,
        "konductor",
        &["cancel", "--train", &t, "--reason", "superseded"],
    )
    .ok();

    let s: serde_json::Value =
        serde_json::from_str(&k(&["status", "--train", &t, "--json"]).ok()).unwrap();
    assert_eq!(s["cancelled_by"], "te@example.com", "{s}");
    assert_eq!(s["opened_by"], "konductor@example.com", "{s}");
    assert_eq!(s["cancel_reason"], "superseded", "{s}");
    let text = k(&["status", "--train", &t]).ok();
    assert!(
        text.contains("te@example.com") && !text.contains("Release Boss"),
        "{text}"
    );
    let log = k(&["log", "--train", &t, "--json"]).ok();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |event: &str| {
        events
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {log}"))
    };
    assert_eq!(by("cancelled")["by"], "te@example.com", "{log}");
    assert_eq!(by("cancelled")["verified"], true, "{log}");
    assert_eq!(by("opened")["by"], "konductor@example.com", "{log}");
    assert_eq!(by("triggered")["by"], "konductor@example.com", "{log}");
    assert_eq!(by("started")["verified"], false, "{log}");
    let text_log = k(&["log", "--train", &t]).ok();
    assert!(
        text_log
            .lines()
            .any(|l| l.contains(" started ") && l.contains("(unverified)")),
        "{text_log}"
    );
    assert!(
        text_log
            .lines()
            .filter(|l| !l.contains("(unverified)"))
            .all(|l| !l.contains("Release Boss")),
        "{text_log}"
    );
    let html = board(&env, k);
    assert!(
        html.contains("te@example.com") && !html.contains("Release Boss"),
        "the board names the signer"
    );
}
