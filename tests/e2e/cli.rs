//! One or two tests per subcommand that prove the wiring (the logic is tested in the core).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn konductor(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("konductor"));
    crate::support::servers::hermetic(&mut c, home.path());
    let o = c.current_dir(repo_root()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn validate_reports_every_invalid_case_with_its_line_and_exit_2() {
    let dir = repo_root().join("tests/sdd/invalid");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap();
        // The fixtures name the file `t.yaml`; validate names the path it was given.
        let expect = expect.replacen("t.yaml", p.to_str().unwrap(), 1);
        let (code, out, err) = konductor(&["validate", "--sdd", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {out}{err}", p.display());
        assert!(
            err.contains(&expect),
            "{}:\nexpected: {expect}\ngot: {err}",
            p.display()
        );
        assert!(
            err.starts_with("konductor: error: invalid step graph"),
            "{err}"
        );
        n += 1;
    }
    assert!(n >= 20);
    for e in std::fs::read_dir(repo_root().join("tests/sdd/valid")).unwrap() {
        let p = e.unwrap().path();
        let (code, out, err) = konductor(&["validate", "--sdd", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", p.display());
        assert!(out.contains(": ok: "), "{out}");
    }
}

#[test]
fn validate_defaults_to_sdd_yaml_in_the_current_directory() {
    let (code, out, _) = konductor(&["validate"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "sdd.yaml: ok: 11 steps, 4 leaves, 2 targets (complete-verification, complete-deploy), depth 5");
    let (code, _, err) = konductor(&["validate", "--sdd", "/nonexistent/sdd.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read `/nonexistent/sdd.yaml`"), "{err}");
}

#[test]
fn simulate_prints_ticks_result_and_critical_path() {
    let (code, out, _) = konductor(&["simulate", "--target", "complete-verification"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "tick  1: trigger unit-tests.1, lint.1, build_serving_image.1, build_worker_image.1"
        ),
        "{out}"
    );
    assert!(
        out.contains("tick  3: trigger verify_serving_staging.1"),
        "{out}"
    );
    assert!(
        out.contains("result: train succeeded after 3 ticks"),
        "{out}"
    );
    assert!(out.contains("critical path (4 steps, 3 of them jobs): unit-tests → deploy_serving_staging_k8s → verify_serving_staging → complete-verification"), "{out}");
    let (code, out, _) = konductor(&["simulate", "--fail", "lint", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "failed");
    let (code, _, err) = konductor(&["simulate", "--fail", "lnt"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `lint`?"), "{err}");
    let (code, out, _) = konductor(&[
        "simulate",
        "--unblock",
        "require-manual-unblock-before-prod-deploy",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("result: train succeeded after 6 ticks"),
        "{out}"
    );
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let (code, out, _) = konductor(&["graph", "--target", "complete-verification"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("digraph sdd {")
            && out.contains("\"unit-tests\" -> \"deploy_serving_staging_k8s\";"),
        "{out}"
    );
    assert!(!out.contains("prod"), "only the target's part: {out}");
    let (code, out, _) = konductor(&["graph", "--format", "mermaid"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("flowchart LR") && out.contains("verify_serving_prod --> complete_deploy"),
        "{out}"
    );
    let (code, _, err) = konductor(&["graph", "--target", "complete-deplyo"]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `complete-deploy`?"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &["frobnicate"][..],
        &["tick", "--train", "7"],
        &["status", "--watch"],
        &["start"],
    ] {
        let (code, _, err) = konductor(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, out, _) = konductor(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Advance release trains"), "{out}");
    let (code, out, _) = konductor(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("konductor "));
    // Outside any repository (a clone's `origin` would be the fallback remote).
    let away = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("konductor"));
    crate::support::servers::hermetic(&mut c, home.path());
    let o = c
        .current_dir(away.path())
        .args(["status", "--remote", ""])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no remote"), "{err}");
}

#[test]
fn completions_and_man_pages() {
    for bin in ["konductor", "locomotive"] {
        let o = Command::new(assert_cmd::cargo::cargo_bin(bin))
            .args(["completions", "bash"])
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("_{bin}()")));
        let o = Command::new(assert_cmd::cargo::cargo_bin(bin))
            .arg("man")
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains(".TH"));
    }
}
