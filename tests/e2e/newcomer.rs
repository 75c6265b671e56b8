//! What a new user sees first, against a real remote: the gate's unblock command in
//! `status`, the hints for a mistyped gate or trigger, counts in plain English, and an
//! example in every main command's `--help`.

use crate::harness::Env;
use crate::support::servers::Kind;

/// A long gate name, as in the example graph, behind two jobs.
const SDD: &str = "a: []\nb: [a]\nrequire-manual-unblock-before-prod-deploy: {needs: [b], manual: true}\ndeploy: [require-manual-unblock-before-prod-deploy]\n";
const GATE: &str = "require-manual-unblock-before-prod-deploy";

/// Train 1.0 with `a` and `b` done: its gate waits for a person.
fn at_the_gate() -> Env {
    let env = Env::new(Kind::Http, SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "success").ok();
    env.tick(&t);
    env.report("release=1.0=b.1", "success").ok();
    env.tick(&t);
    assert_eq!(env.step_state("1.0", GATE), "blocked");
    env
}

#[test]
fn status_prints_the_unblock_command_of_a_waiting_gate_as_the_board_does() {
    let env = at_the_gate();
    let want = format!("konductor unblock --train 1.0 --step {GATE} --reason \"…\"");
    let status = env.k(&["status", "--train", "1.0"]).ok();
    assert!(
        status.contains(&format!(
            "waiting for someone: gate `{GATE}`\n  to unblock: {want}"
        )),
        "{status}"
    );
    // The board prints the same command.
    let out = env.root.path().join("board");
    let said = env.k(&["board", "--out", out.to_str().unwrap()]).ok();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains(&format!(
            "to unblock: <code>{}</code>",
            want.replace('"', "&quot;")
        )),
        "board"
    );
    // "1 train", not "1 trains".
    assert!(said.trim_end().ends_with("(1 train)"), "{said}");
    // The command as printed works (with a reason filled in), and then nothing waits.
    env.k(&[
        "unblock", "--train", "1.0", "--step", GATE, "--reason", "ok",
    ])
    .ok();
    let status = env.k(&["status", "--train", "1.0"]).ok();
    assert!(!status.contains("waiting for someone"), "{status}");
}

#[test]
fn a_step_blocked_by_a_failure_is_not_listed_as_waiting_for_someone() {
    let env = Env::new(Kind::Bare, SDD);
    let t = env.start();
    env.tick(&t);
    env.report("release=1.0=a.1", "success").ok();
    env.tick(&t);
    env.report("release=1.0=b.1", "failure").ok();
    env.tick(&t);
    assert_eq!(env.step_state("1.0", GATE), "blocked");
    let status = env.k(&["status", "--train", "1.0"]).ok();
    assert!(!status.contains("to unblock"), "{status}");
}

#[test]
fn unblock_of_the_start_of_a_long_gate_name_suggests_the_gate() {
    let env = at_the_gate();
    env.k(&[
        "unblock",
        "--train",
        "1.0",
        "--step",
        "require-manual-unblock",
    ])
    .fails(2, "unknown step `require-manual-unblock` in sdd.yaml@")
    .fails(2, &format!("; did you mean `{GATE}`?"));
    assert!(!env.tags("1.0").iter().any(|t| t.ends_with("=unblocked")));
}

#[test]
fn locomotive_on_a_trigger_of_a_misspelt_step_suggests_the_trigger() {
    let env = at_the_gate();
    let before = env.tags("1.0");
    env.l(&[
        "set-step-state",
        "--state-name",
        "success",
        "--triggering-tag",
        "release=1.0=deplyo.1",
    ])
    .fails(
        2,
        "; `deplyo` is not a step of train 1.0's graph; did you mean step `deploy` (not triggered yet)?",
    );
    env.l(&[
        "set-step-state",
        "--state-name",
        "started",
        "--triggering-tag",
        "release=1.0=bb.1",
    ])
    .fails(2, "did you mean `release=1.0=b.1`?");
    assert_eq!(env.tags("1.0"), before, "a refused report wrote a tag");
}

#[test]
fn help_of_the_main_commands_shows_an_example() {
    let env = Env::new(Kind::Bare, SDD);
    for (bin, cmd) in [
        ("konductor", "validate"),
        ("konductor", "start"),
        ("konductor", "tick"),
        ("konductor", "status"),
        ("konductor", "log"),
        ("konductor", "unblock"),
        ("konductor", "retry"),
        ("konductor", "cancel"),
        ("konductor", "board"),
        ("locomotive", "set-step-state"),
        ("locomotive", "publish-manifests"),
    ] {
        for flag in ["--help", "-h"] {
            let help = env.run(bin, &[cmd, flag]).ok();
            let examples = help
                .split("\nExamples:\n")
                .nth(1)
                .unwrap_or_else(|| panic!("`{bin} {cmd} {flag}` has no examples:\n{help}"));
            // Each example runs this very command, after a comment saying what it does.
            assert!(
                examples.contains(&format!("\n  {bin} {cmd}")),
                "`{bin} {cmd} {flag}`:\n{examples}"
            );
            assert!(examples.starts_with("  # "), "{examples}");
        }
    }
}

#[test]
fn the_demo_says_a_train_succeeded_not_is_succeeded() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let demo = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    let start = demo
        .find("state_phrase() {")
        .expect("state_phrase in demo.sh");
    let end = start + demo[start..].find("\n}\n").unwrap() + 3;
    let script = format!(
        "{}for s in running blocked succeeded failed cancelled; do echo \"train 1.0 $(state_phrase $s)\"; done",
        &demo[start..end]
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "train 1.0 is running\ntrain 1.0 is blocked\ntrain 1.0 succeeded\ntrain 1.0 failed\ntrain 1.0 was cancelled\n"
    );
}

#[test]
fn readme_by_hand_shows_the_gate_and_the_board() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let by_hand = readme
        .split("By hand,")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a \"By hand\" section");
    // The gate of the example graph, unblocked as `status` says, then the board opened.
    let gate = "require-manual-unblock-before-prod-deploy";
    let sdd = std::fs::read_to_string(root.join("sdd.yaml")).unwrap();
    assert!(
        sdd.contains(&format!("{gate}:")),
        "the example graph's gate"
    );
    for line in [
        format!("konductor unblock --train 1.0 --step {gate} --reason "),
        "konductor board --out board".to_string(),
        "board/index.html".to_string(),
    ] {
        assert!(
            by_hand.contains(&line),
            "README's \"By hand\" lacks `{line}`"
        );
    }
}
