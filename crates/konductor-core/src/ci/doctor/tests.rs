//! Doctor's table of cases: one config per CI system, and the report it gives.

use super::*;
use crate::ci::filter::{trigger_filter_yaml, CiSystem};
use crate::model::sdd::Sdd;

const SDD: &str = "a: []\nb: [a]\ndone: {needs: [b], virtual: true}\n";

fn inputs(sdd: &str, circleci: Option<&str>, github: &[&str], argo: &[&str]) -> Inputs {
    Inputs {
        sdd: Sdd::parse("sdd.yaml", sdd).unwrap(),
        circleci: circleci
            .map(|t| SourceFile::new("config.yml", t))
            .into_iter()
            .collect(),
        github: github
            .iter()
            .enumerate()
            .map(|(i, t)| SourceFile::new(format!("wf{i}.yml"), *t))
            .collect(),
        argo: argo
            .iter()
            .enumerate()
            .map(|(i, t)| SourceFile::new(format!("argo{i}.yaml"), *t))
            .collect(),
    }
}

fn run(sdd: &str, circleci: Option<&str>, github: &[&str], argo: &[&str]) -> Report {
    check(&inputs(sdd, circleci, github, argo)).unwrap()
}

fn kinds(r: &Report, step: &str) -> Vec<FindingKind> {
    r.steps
        .iter()
        .find(|s| s.step == step)
        .unwrap()
        .findings
        .iter()
        .filter(|f| f.is_problem())
        .map(|f| f.kind)
        .collect()
}

fn status(r: &Report, step: &str) -> StepStatus {
    r.steps.iter().find(|s| s.step == step).unwrap().status
}

/// A CircleCI config with one workflow per step, each job reporting with the orb.
fn circleci(filters: &[(&str, &str)]) -> String {
    let mut s = String::from(
            "version: 2.1\norbs:\n  konductor: konductor/konductor@0.1.0\njobs:\n  work:\n    docker: [{image: x}]\n    steps:\n      - konductor/locomotive-on-start\n      - checkout\n      - run: make\n      - konductor/locomotive-on-end\nworkflows:\n",
        );
    for (step, only) in filters {
        s.push_str(&format!(
                "  {step}:\n    jobs:\n      - work:\n          name: {step}\n          filters:\n            branches: {{ignore: /.*/}}\n            tags: {{only: '{only}'}}\n"
            ));
    }
    s
}

const A: &str = r"/^release=\d+\.\d+=a\.\d+$/";
const B: &str = r"/^release=\d+\.\d+=b\.\d+$/";

#[test]
fn clean_circleci_config() {
    let r = run(SDD, Some(&circleci(&[("a", A), ("b", B)])), &[], &[]);
    assert!(r.is_clean(), "{}", r.render_text());
    assert_eq!(r.steps[0].jobs[0].job, "a");
    assert_eq!(r.steps[2].role, StepRole::Virtual);
    assert_eq!(r.target.as_deref(), Some("done"));
    assert!(r
        .render_text()
        .ends_with("3 steps: 3 ok, 0 missing, 0 hazard; no problems\n"));
}

#[test]
fn a_step_without_a_job_is_missing() {
    let r = run(SDD, Some(&circleci(&[("a", A)])), &[], &[]);
    assert_eq!(status(&r, "b"), StepStatus::Missing);
    assert_eq!(kinds(&r, "b"), [FindingKind::NoJob]);
    assert!(r
        .render_text()
        .contains("MISSING b\n        no job runs for its trigger tags, e.g. `release=1.0=b.1`"));
}

#[test]
fn a_filter_matching_state_tags_is_a_hazard() {
    let loose = r"/^release=.*=a\..*$/";
    let r = run(SDD, Some(&circleci(&[("a", loose), ("b", B)])), &[], &[]);
    assert_eq!(status(&r, "a"), StepStatus::Hazard);
    assert_eq!(kinds(&r, "a"), [FindingKind::StateTagHazard]);
    let text = r.render_text();
    assert!(
        text.contains("also runs for `release=1.0=a.1=started`, `release=1.0=a.1=success`"),
        "{text}"
    );
    // A filter for `a` that also takes `b`'s triggers.
    let both = r"/^release=\d+\.\d+=[ab]\.\d+$/";
    let r = run(SDD, Some(&circleci(&[("a", both), ("b", B)])), &[], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::OtherStepHazard]);
    assert_eq!(kinds(&r, "b"), [FindingKind::OtherStepHazard]);
}

#[test]
fn a_filter_for_one_train_only_is_partial() {
    let one = r"/^release=1\.0=a\.\d+$/";
    let r = run(SDD, Some(&circleci(&[("a", one), ("b", B)])), &[], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::PartialMatch]);
}

#[test]
fn missing_locomotive_calls() {
    let cfg = circleci(&[("a", A), ("b", B)]).replace("      - konductor/locomotive-on-end\n", "");
    let r = run(SDD, Some(&cfg), &[], &[]);
    assert_eq!(
        kinds(&r, "a"),
        [FindingKind::MissingSuccess, FindingKind::MissingFailure]
    );
    let cfg =
        circleci(&[("a", A), ("b", B)]).replace("      - konductor/locomotive-on-start\n", "");
    let r = run(SDD, Some(&cfg), &[], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::MissingStart]);
    assert!(r.render_text().contains(
            "never reports `started` (nor does a job it needs); add `konductor/locomotive-on-start` as its first step"
        ));
}

#[test]
fn run_steps_calling_locomotive_count_by_state_and_when() {
    let job = |end: &str| {
        format!(
                "jobs:\n  work:\n    steps:\n      - run: locomotive set-step-state --state-name started --triggering-tag \"$CIRCLE_TAG\"\n      - run: make\n{end}workflows:\n  a:\n    jobs:\n      - work:\n          name: a\n          filters: {{tags: {{only: '{A}'}}}}\n"
            )
    };
    let good = job("      - run: locomotive set-step-state --state-name success --triggering-tag \"$CIRCLE_TAG\"\n      - run:\n          when: on_fail\n          command: locomotive set-step-state --state-name=failure --triggering-tag \"$CIRCLE_TAG\"\n");
    let r = run("a: []\nz: [a]\n", Some(&good), &[], &[]);
    assert!(r.is_clean(), "{}", r.render_text());
    // A failure report that runs only on success never runs when it matters.
    let bad = job("      - run: locomotive set-step-state --state-name success --triggering-tag \"$CIRCLE_TAG\"\n      - run: locomotive set-step-state --state-name failure --triggering-tag \"$CIRCLE_TAG\"\n");
    let r = run("a: []\nz: [a]\n", Some(&bad), &[], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::MissingFailure]);
}

/// The shipped pattern: the first job reports `started` and failures, the last one
/// the outcome; local commands are followed.
#[test]
fn jobs_of_one_step_share_the_reports() {
    let cfg = format!(
        r#"version: 2.1
orbs:
  konductor: konductor/konductor@0.1.0
commands:
  report-start:
    steps: [konductor/locomotive-on-start]
jobs:
  render:
    steps:
      - report-start
      - run: render
      - konductor/locomotive-on-end:
          report-success: false
  publish:
    steps:
      - run: publish
      - konductor/locomotive-on-end
workflows:
  a:
    jobs:
      - render:
          filters: &f
            tags: {{only: '{A}'}}
            branches: {{ignore: /.*/}}
      - publish:
          name: a
          requires: [render]
          filters: *f
"#
    );
    let r = run("a: []\nz: [a]\n", Some(&cfg), &[], &[]);
    assert!(r.is_clean(), "{}", r.render_text());
    assert_eq!(r.steps[0].jobs.len(), 2);
    // Without the last job, nobody reports success.
    let cut = cfg.split("      - publish:").next().unwrap();
    let r = run("a: []\nz: [a]\n", Some(cut), &[], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::MissingSuccess]);
}

#[test]
fn circleci_upstream_jobs_need_tag_filters() {
    let cfg = format!(
            "version: 2.1\njobs:\n  w:\n    steps:\n      - run: locomotive set-step-state --state-name started\n      - run: locomotive set-step-state --state-name success\n      - run: {{when: on_fail, command: locomotive set-step-state --state-name failure}}\nworkflows:\n  a:\n    jobs:\n      - w: {{name: prepare}}\n      - w: {{name: more, requires: [prepare], filters: {{tags: {{only: '/^release=9\\.9=a\\.1$/'}}}}}}\n      - w:\n          name: a\n          requires: [more, {{ghost: success}}]\n          filters: {{tags: {{only: '{A}'}}}}\n"
        );
    let r = run("a: []\nz: [a]\n", Some(&cfg), &[], &[]);
    let k = kinds(&r, "a");
    assert!(k.contains(&FindingKind::UpstreamWithoutTagFilters), "{k:?}");
    assert!(k.contains(&FindingKind::UpstreamFilterMismatch), "{k:?}");
    assert!(k.contains(&FindingKind::UnknownUpstream), "{k:?}");
    assert_eq!(status(&r, "a"), StepStatus::Missing);
    assert!(r.render_text().contains(
        "needs `prepare`, which has no tag filters: CircleCI then runs neither for tags"
    ));
}

#[test]
fn filters_matching_no_step_are_listed() {
    let cfg = circleci(&[
        ("a", A),
        ("b", B),
        ("old", r"/^release=\d+\.\d+=bb\.\d+$/"),
        ("states", r"/^release=\d+\.\d+=a\.\d+=.*$/"),
        ("idle", r"/^release=\d+\.\d+=done\.\d+$/"),
        ("semver", "/^v.*/"),
    ]);
    let r = run(SDD, Some(&cfg), &[], &[]);
    let g: Vec<String> = r.global.iter().map(|f| f.to_string()).collect();
    assert_eq!(g.len(), 4, "{g:#?}");
    assert!(g[0].contains("workflow `old`, job `old` has tag filters (`/^release=\\d+\\.\\d+=bb\\.\\d+$/`) that match no step's trigger tags; `bb` is not a step; did you mean `b`?"), "{}", g[0]);
    assert!(
        g[1].contains("job `states` runs for `release=1.0=a.1=started`"),
        "{}",
        g[1]
    );
    assert!(
        g[2].contains("runs for the trigger tags of step `done`, which Konductor never triggers"),
        "{}",
        g[2]
    );
    assert!(
        g[3].starts_with("note: ") && g[3].contains("for none of Konductor's"),
        "{}",
        g[3]
    );
    assert_eq!(r.problems(), 3);
}

fn github(tags: &str, steps: &str) -> String {
    format!(
            "name: step\non:\n  push:\n    tags:\n{tags}jobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n{steps}"
        )
}

const GH_STEPS: &str = "      - uses: konductor/konductor/integrations/github@v0.1.0\n        with: {phase: start}\n      - run: make\n      - if: success()\n        uses: konductor/konductor/integrations/github@v0.1.0\n        with: {phase: end, status: success}\n      - if: failure()\n        uses: konductor/konductor/integrations/github@v0.1.0\n        with: {phase: end, status: failure}\n";

#[test]
fn github_workflows() {
    let ok = github(
        "      - 'release=*=a.*'\n      - '!release=*=a.*=*'\n",
        GH_STEPS,
    );
    let r = run("a: []\nz: [a]\n", None, &[&ok], &[]);
    assert!(r.is_clean(), "{}", r.render_text());
    assert_eq!(
        r.steps[0].jobs[0].to_string(),
        "github `wf0.yml`: workflow `step`, job `build`"
    );
    // Without the negation, `*` takes the state tags too.
    let loose = github("      - 'release=*=a.*'\n", GH_STEPS);
    let r = run("a: []\nz: [a]\n", None, &[&loose], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::StateTagHazard]);
    // A failure report under `if: success()` (the default) never runs on failure.
    let steps = GH_STEPS.replace("if: failure()", "if: github.ref_type == 'tag'");
    let r = run(
        "a: []\nz: [a]\n",
        None,
        &[&github(
            "      - 'release=*=a.*'\n      - '!release=*=a.*=*'\n",
            &steps,
        )],
        &[],
    );
    assert_eq!(kinds(&r, "a"), [FindingKind::MissingFailure]);
    // `on: push` without filters runs for every tag; branch filters alone for none.
    let all = "on: push\njobs:\n  x:\n    steps: []\n";
    let r = run("a: []\nz: [a]\n", None, &[all], &[]);
    assert_eq!(status(&r, "a"), StepStatus::Hazard);
    let branches = "on:\n  push:\n    branches: [main]\njobs:\n  x:\n    steps: []\n";
    let r = run("a: []\nz: [a]\n", None, &[branches], &[]);
    assert_eq!(kinds(&r, "a"), [FindingKind::NoJob]);
    assert!(r.global.is_empty());
}

#[test]
fn github_jobs_of_a_workflow_share_the_reports() {
    let wf = "on:\n  push:\n    tags: ['release=[0-9]+.[0-9]+=a.[0-9]+']\njobs:\n  first:\n    steps:\n      - run: locomotive set-step-state --state-name started --triggering-tag \"$GITHUB_REF_NAME\"\n      - run: make\n  last:\n    needs: first\n    if: always()\n    steps:\n      - if: always()\n        run: locomotive set-step-state --state-name \"$STATE\" --triggering-tag \"$GITHUB_REF_NAME\"\n        env:\n          STATE: ${{ needs.first.result == 'success' && 'success' || 'failure' }}\n";
    let r = run("a: []\nz: [a]\n", None, &[wf], &[]);
    assert!(r.is_clean(), "{}", r.render_text());
}

const SENSOR: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: verify-a
  labels: {konductor.io/step: a}
spec:
  dependencies:
    - name: trigger-tag
      eventSourceName: github
      eventName: konductor
      filters:
        data:
          - {path: body.created, type: bool, value: ["true"]}
          - path: body.ref
            type: string
            value: ['^refs/tags/release=[0-9]+\.[0-9]+=a\.[0-9]+$']
  triggers:
    - template:
        name: verify
        argoWorkflow:
          operation: submit
          source:
            resource:
              kind: Workflow
              metadata: {generateName: verify-, namespace: apps}
              spec:
                workflowTemplateRef: {name: verify}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: verify, namespace: apps}
spec:
  entrypoint: main
  onExit: report
  templates:
    - name: main
      steps:
        - - {name: started, template: state, arguments: {parameters: [{name: state, value: started}]}}
    - name: report
      steps:
        - - {name: ok, template: state, when: "{{workflow.status}} == Succeeded", arguments: {parameters: [{name: state, value: success}]}}
          - {name: ko, template: state, when: "{{workflow.status}} != Succeeded", arguments: {parameters: [{name: state, value: failure}]}}
    - name: state
      inputs: {parameters: [{name: state}]}
      script:
        image: konductor
        command: [bash]
        source: exec locomotive set-step-state --state-name "$STATE" --triggering-tag "$TAG"
"#;

#[test]
fn argo_sensors() {
    let r = run("a: []\nz: [a]\n", None, &[], &[SENSOR]);
    assert!(r.is_clean(), "{}", r.render_text());
    assert_eq!(
        r.steps[0].jobs[0].to_string(),
        "argo `argo0.yaml`: sensor `verify-a`, dependency `trigger-tag`"
    );
    // Unanchored: the state tags match too.
    let loose = SENSOR.replace(
        r"'^refs/tags/release=[0-9]+\.[0-9]+=a\.[0-9]+$'",
        "'release=.*=a'",
    );
    let r = run("a: []\nz: [a]\n", None, &[], &[&loose]);
    assert_eq!(kinds(&r, "a"), [FindingKind::StateTagHazard]);
    // `or` lets `body.created` alone pass every tag.
    let or = SENSOR.replace(
        "      filters:\n",
        "      filters:\n        dataLogicalOperator: or\n",
    );
    let r = run("a: []\nz: [a]\n", None, &[], &[&or]);
    assert_eq!(status(&r, "a"), StepStatus::Hazard);
    // Without its template, the calls are not checked: a note, not a problem.
    let alone = SENSOR.split("---").next().unwrap();
    let r = run("a: []\nz: [a]\n", None, &[], &[alone]);
    assert!(r.is_clean());
    assert_eq!(r.steps[0].findings[0].kind, FindingKind::NotChecked);
    // A step's sensor without a `body.ref` filter fires for everything.
    let unfiltered = alone.replace("path: body.ref", "path: body.other");
    let r = run("a: []\nz: [a]\n", None, &[], &[&unfiltered]);
    assert_eq!(r.global[0].kind, FindingKind::UnfilteredSensor);
}

/// What `konductor ci-filter --yaml` prints passes doctor for every system.
#[test]
fn printed_snippets_pass() {
    let snippet = trigger_filter_yaml(CiSystem::Circleci, "a").unwrap();
    let indented: String = snippet
        .lines()
        .map(|l| format!("          {l}\n"))
        .collect();
    let cfg = format!(
            "version: 2.1\norbs:\n  konductor: konductor/konductor@0.1.0\njobs:\n  work:\n    steps: [konductor/locomotive-on-start, konductor/locomotive-on-end]\nworkflows:\n  a:\n    jobs:\n      - work:\n          name: a\n{indented}"
        );
    let r = run("a: []\nz: [a]\n", Some(&cfg), &[], &[]);
    assert!(r.is_clean(), "{cfg}\n{}", r.render_text());
    let snippet = trigger_filter_yaml(CiSystem::Github, "a").unwrap();
    let wf = format!("{snippet}jobs:\n  a:\n    steps:\n{GH_STEPS}");
    let r = run("a: []\nz: [a]\n", None, &[&wf], &[]);
    assert!(r.is_clean(), "{wf}\n{}", r.render_text());
}

#[test]
fn unusable_input_names_the_file() {
    let e = check(&inputs(SDD, Some("workflows: [unclosed"), &[], &[])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("`config.yml` is not valid YAML: "),
        "{e}"
    );
    let e = check(&inputs(
        SDD,
        Some("workflows:\n  a:\n    jobs:\n      - w:\n          filters: {tags: {only: '/(/'}}\n"),
        &[],
        &[],
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("`config.yml`: workflow `a`, job `w`: invalid regular expression `/(/`"),
        "{e}"
    );
    let e = check(&inputs(
        SDD,
        Some("workflows:\n  a:\n    jobs: [nothere]\n"),
        &[],
        &[],
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`config.yml`: workflow `a`, job `nothere`: no job `nothere` is defined under `jobs`"
    );
    let e = check(&inputs(
        SDD,
        None,
        &["on:\n  push:\n    tags: ['[x']\n"],
        &[],
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`wf0.yml`: `on.push`: invalid GitHub filter pattern `[x`"),
        "{e}"
    );
    let e = check(&inputs(
        SDD,
        None,
        &["on:\n  push:\n    tags: [a]\n    tags-ignore: [b]\n"],
        &[],
    ))
    .unwrap_err();
    assert!(
        e.to_string().contains("both `tags` and `tags-ignore`"),
        "{e}"
    );
}

#[test]
fn several_final_steps_still_check_every_inner_step() {
    let r = run(
        "a: []\nb: [a]\nc: [a]\n",
        Some(&circleci(&[("a", A)])),
        &[],
        &[],
    );
    assert!(r.is_clean(), "{}", r.render_text());
    assert!(r.target.is_none());
    assert_eq!(r.global[0].kind, FindingKind::NoDefaultTarget);
    assert_eq!(r.steps[1].role, StepRole::Target);
}

#[test]
fn report_serializes() {
    let r = run(
        SDD,
        Some(&circleci(&[("a", r"/^release=.*=a\..*$/")])),
        &[],
        &[],
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["steps"][0]["status"], "hazard");
    assert_eq!(v["steps"][0]["findings"][0]["kind"], "state-tag-hazard");
    assert_eq!(v["steps"][0]["findings"][0]["job"]["system"], "circleci");
    assert_eq!(v["steps"][1]["status"], "missing");
    assert_eq!(v["steps"][2]["role"], "virtual");
}

#[test]
fn load_reads_the_repository_layout() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("sdd.yaml"), "a: []\nz: [a]\n").unwrap();
    std::fs::create_dir_all(p.join(".circleci")).unwrap();
    std::fs::write(p.join(".circleci/config.yml"), circleci(&[("a", A)])).unwrap();
    std::fs::create_dir_all(p.join("deploy/argo")).unwrap();
    std::fs::write(p.join("deploy/argo/sensor.yaml"), SENSOR).unwrap();
    std::fs::write(p.join("deploy/argo/other.yaml"), "kind: ConfigMap\n").unwrap();
    std::fs::create_dir_all(p.join("target/x")).unwrap();
    std::fs::write(p.join("target/x/sensor.yaml"), "kind: Sensor\n: bad").unwrap();
    let opts = DoctorOptions {
        repo: p.to_path_buf(),
        sdd: None,
        circleci: None,
        github_dir: None,
        argo_dir: None,
    };
    let inputs = load(&opts).unwrap();
    assert_eq!(inputs.circleci.len(), 1);
    assert!(inputs.github.is_empty());
    assert_eq!(inputs.argo.len(), 1);
    let r = check(&inputs).unwrap();
    assert!(r.is_clean(), "{}", r.render_text());
    assert_eq!(r.steps[0].jobs.len(), 2);
    let e = load(&DoctorOptions {
        github_dir: Some(p.join("missing")),
        ..opts
    })
    .unwrap_err();
    assert!(e.to_string().starts_with("cannot read `"), "{e}");
}
