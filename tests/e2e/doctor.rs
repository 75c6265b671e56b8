//! `konductor doctor` and `konductor ci-filter` through the binary: the shipped examples
//! pass, each broken copy in tests/fixtures/doctor fails for its reason, and the printed
//! filters select exactly a step's trigger tags.

use std::path::{Path, PathBuf};
use std::process::Command;

use konductor_core::cifilter::GithubRefFilter;

const SHIPPED_CIRCLECI: &str = "examples/circleci/config.yml";
const SHIPPED_GITHUB: &str = "examples/github/workflows";
const SHIPPED_ARGO: &str = "integrations/argo";
/// The repository's own step graph: the shipped wiring covers every step of it.
const ROOT_SDD: &str = "sdd.yaml";

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

/// `doctor` on the given inputs; every input is explicit, so that a `.circleci/` or
/// `.github/` added to this repository one day changes nothing here.
fn doctor(sdd: &str, circleci: &str, github_dir: &str, argo_dir: &str) -> (i32, String, String) {
    konductor(&[
        "doctor",
        "--sdd",
        sdd,
        "--circleci",
        circleci,
        "--github-dir",
        github_dir,
        "--argo-dir",
        argo_dir,
    ])
}

#[test]
fn doctor_passes_on_the_shipped_examples() {
    let (code, out, err) = doctor(ROOT_SDD, SHIPPED_CIRCLECI, SHIPPED_GITHUB, SHIPPED_ARGO);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with("11 steps: 11 ok, 0 missing, 0 hazard; no problems\n"),
        "{out}"
    );
    for line in [
        "ok      unit-tests\n        job: circleci `examples/circleci/config.yml`: workflow `unit-tests`, job `unit-tests`\n        job: github `examples/github/workflows/unit-tests.yml`: workflow `konductor unit-tests`, job `unit-tests`\n",
        "ok      deploy_serving_staging_k8s\n        job: circleci `examples/circleci/config.yml`: workflow `deploy_serving_staging_k8s`, job `render_serving_staging_manifests`\n        job: circleci `examples/circleci/config.yml`: workflow `deploy_serving_staging_k8s`, job `deploy_serving_staging_k8s`\n",
        "ok      verify_serving_staging\n        job: argo `integrations/argo/sensor.yaml`: sensor `konductor-verify-serving-staging`, dependency `trigger-tag`\n",
        "ok      require-manual-unblock-before-prod-deploy (manual gate: never triggered)\n",
    ] {
        assert!(out.contains(line), "missing:\n{line}\nin:\n{out}");
    }
}

/// Each file in tests/fixtures/doctor (but the SDD) is a broken copy of a shipped file;
/// its `# expect:` lines must all appear in the output, with exit 6. It replaces the
/// shipped file it copies; the other inputs stay the shipped ones.
#[test]
fn doctor_catches_each_broken_fixture() {
    let dir = repo_root().join("tests/fixtures/doctor");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("sdd-"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expects.is_empty(), "{name}: no `# expect:` line");
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join(&name);
        std::fs::copy(&path, &copy).unwrap();
        let (fixture, other) = (path.to_str().unwrap(), tmp.path().to_str().unwrap());
        let (code, out, err) = if name.starts_with("circleci-") {
            doctor(ROOT_SDD, fixture, SHIPPED_GITHUB, SHIPPED_ARGO)
        } else if name.starts_with("github-") {
            doctor(ROOT_SDD, SHIPPED_CIRCLECI, other, SHIPPED_ARGO)
        } else if name.starts_with("argo-") {
            // The sensor's WorkflowTemplate comes along.
            std::fs::copy(
                repo_root()
                    .join(SHIPPED_ARGO)
                    .join("verify-deployment-workflowtemplate.yaml"),
                tmp.path().join("verify-deployment-workflowtemplate.yaml"),
            )
            .unwrap();
            doctor(ROOT_SDD, SHIPPED_CIRCLECI, SHIPPED_GITHUB, other)
        } else {
            panic!("{name}: name it circleci-*, github-* or argo-*");
        };
        assert_eq!(code, 6, "{name}:\n{out}{err}");
        for e in expects {
            assert!(out.contains(e), "{name}: expected `{e}` in:\n{out}");
        }
    }
}

#[test]
fn doctor_json_has_a_status_per_step() {
    let broken = "tests/fixtures/doctor/circleci-filter-matches-state-tags.yml";
    let (code, out, err) = konductor(&[
        "doctor",
        "--json",
        "--sdd",
        ROOT_SDD,
        "--circleci",
        broken,
        "--github-dir",
        SHIPPED_GITHUB,
        "--argo-dir",
        SHIPPED_ARGO,
    ]);
    assert_eq!(code, 6, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 11);
    assert_eq!(steps[0]["step"], "unit-tests");
    assert_eq!(steps[0]["status"], "hazard");
    let f = &steps[0]["findings"][0];
    assert_eq!(f["kind"], "state-tag-hazard");
    assert_eq!(f["severity"], "problem");
    assert_eq!(f["job"]["file"], broken);
    assert_eq!(steps[1]["status"], "ok");
    assert_eq!(steps[6]["role"], "virtual");
    assert_eq!(v["target"], "complete-deploy");
}

#[test]
fn doctor_exits_2_naming_an_unusable_input() {
    let (code, _, err) = doctor(
        ROOT_SDD,
        "/nonexistent/config.yml",
        SHIPPED_GITHUB,
        SHIPPED_ARGO,
    );
    assert_eq!(code, 2);
    assert!(
        err.starts_with("konductor: error: cannot read `/nonexistent/config.yml`"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("config.yml");
    std::fs::write(&bad, "workflows: [unclosed\n").unwrap();
    let (code, _, err) = doctor(
        ROOT_SDD,
        bad.to_str().unwrap(),
        SHIPPED_GITHUB,
        SHIPPED_ARGO,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("`{}` is not valid YAML", bad.display())),
        "{err}"
    );
    let (code, _, err) = doctor(
        "tests/sdd/invalid/cycle.yaml",
        SHIPPED_CIRCLECI,
        SHIPPED_GITHUB,
        SHIPPED_ARGO,
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn ci_filter_prints_both_forms_for_both_systems() {
    let (code, out, _) = konductor(&["ci-filter", "--step", "unit-tests", "--for", "circleci"]);
    assert_eq!(code, 0);
    assert_eq!(out, "/^release=\\d+\\.\\d+=unit-tests\\.\\d+$/\n");
    let (code, out, _) = konductor(&["ci-filter", "--step", "unit-tests", "--for", "github"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "release=[0-9]+.[0-9]+=unit-tests.[0-9]+\n!release=*=unit-tests.*=*\n"
    );
    let (code, out, _) = konductor(&[
        "ci-filter",
        "--step",
        "unit-tests",
        "--for",
        "circleci",
        "--yaml",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "filters:\n  tags:\n    only: /^release=\\d+\\.\\d+=unit-tests\\.\\d+$/\n  branches:\n    ignore: /.*/\n"
    );
    let (code, out, _) = konductor(&[
        "ci-filter",
        "--step",
        "unit-tests",
        "--for",
        "github",
        "--yaml",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "on:\n  push:\n    tags:\n      - \"release=[0-9]+.[0-9]+=unit-tests.[0-9]+\"\n      - \"!release=*=unit-tests.*=*\"\n"
    );
}

#[test]
fn ci_filter_refuses_invalid_and_unknown_steps() {
    let (code, _, err) = konductor(&["ci-filter", "--step", "unit.tests", "--for", "github"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid step `unit.tests`"), "{err}");
    // sdd.yaml in the current directory is read when `--sdd` is not given.
    let (code, _, err) = konductor(&["ci-filter", "--step", "unit-test", "--for", "circleci"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown step `unit-test` in `sdd.yaml`; did you mean `unit-tests`?"),
        "{err}"
    );
    let (code, _, err) = konductor(&[
        "ci-filter",
        "--step",
        "lint",
        "--for",
        "circleci",
        "--sdd",
        ROOT_SDD,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = konductor(&["ci-filter", "--step", "lint", "--for", "gitlab"]);
    assert_eq!(code, 2);
}

/// The printed filters, read back the way each CI system reads them: the CircleCI regex
/// compiled with `regex` (it must match the entire tag), the GitHub patterns with the core
/// matcher. Every step of sdd.yaml, against every other step's tags.
#[test]
fn ci_filter_output_selects_exactly_the_trigger_tags() {
    let sdd = std::fs::read_to_string(repo_root().join("sdd.yaml")).unwrap();
    let sdd = konductor_core::sdd::Sdd::parse("sdd.yaml", &sdd).unwrap();
    let steps: Vec<&str> = sdd.steps().iter().map(|s| s.name.as_str()).collect();
    for step in &steps {
        let (code, out, err) = konductor(&["ci-filter", "--step", step, "--for", "circleci"]);
        assert_eq!(code, 0, "{err}");
        let inner = out
            .trim_end()
            .strip_prefix('/')
            .and_then(|s| s.strip_suffix('/'))
            .unwrap();
        let re = regex::Regex::new(&format!("^(?:{inner})$")).unwrap();
        let (code, out, err) = konductor(&["ci-filter", "--step", step, "--for", "github"]);
        assert_eq!(code, 0, "{err}");
        let patterns: Vec<&str> = out.lines().collect();
        let gh = GithubRefFilter::new(Some(&patterns[..]), &[]).unwrap();
        for t in [
            format!("release=1.0={step}.1"),
            format!("release=42.3={step}.17"),
            format!("release=4294967295.0={step}.123456"),
        ] {
            assert!(re.is_match(&t), "circleci, {step}: {t}");
            assert!(gh.matches(&t), "github, {step}: {t}");
        }
        let mut never = vec![
            format!("release=1.0={step}=unblocked"),
            format!("release=1.0={step}=skipped"),
            "release=1.0=cancelled".to_string(),
            "release=1.0".to_string(),
        ];
        for state in ["started", "success", "failure", "timeout"] {
            never.push(format!("release=1.0={step}.1={state}"));
        }
        for other in steps.iter().filter(|o| *o != step) {
            never.push(format!("release=1.0={other}.1"));
            never.push(format!("release=1.0={other}.1=started"));
        }
        for t in never {
            assert!(!re.is_match(&t), "circleci, {step}: {t}");
            assert!(!gh.matches(&t), "github, {step}: {t}");
        }
    }
}

/// The repository's own `sdd.yaml` (production included) against everything shipped:
/// clean. It reported `MISSING verify_serving_prod` while only the staging Sensor shipped.
#[test]
fn doctor_is_clean_with_the_root_sdd_and_the_shipped_wiring() {
    let (code, out, err) = doctor("sdd.yaml", SHIPPED_CIRCLECI, SHIPPED_GITHUB, SHIPPED_ARGO);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with("11 steps: 11 ok, 0 missing, 0 hazard; no problems\n"),
        "{out}"
    );
    assert!(
        out.contains("ok      verify_serving_prod\n        job: argo `integrations/argo/sensor-production.yaml`"),
        "{out}"
    );
}
