//! `konductor doctor`: cross-check the step graph against the CI configuration.
//!
//! Reads the SDD, a CircleCI config, GitHub workflows and Argo Events sensors, and for
//! every step that runs as a job reports:
//!
//! - which jobs its trigger tags start (probed with `release=1.0=<step>.1` and
//!   `release=42.3=<step>.17`), or that none does;
//! - hazards: a matching job whose filter also matches the step's state or control tags
//!   (its own `locomotive` pushes would start it again) or another step's tags;
//! - whether each matching job reports `started` at its start and `success` / `failure`
//!   at its end through `locomotive`. Jobs of one step that depend on each other share the
//!   work: `started` may come from a job upstream, `success` from a job downstream;
//! - CircleCI upstream jobs (`requires`, transitively) without tag filters, which CircleCI
//!   then runs for no tag, so the step never runs.
//!
//! Globally, it lists jobs whose tag filters match no step's trigger tags.
//!
//! The configuration is read with the semantics of each system (see [`crate::ci::filter`]);
//! `locomotive` calls are found by name: the orb commands `locomotive-on-start` and
//! `locomotive-on-end`, the GitHub Action with `phase: start` / `end`, and scripts that
//! run `set-step-state`.
//!
//! Each CI system has its reader, which turns its files into `Job`s: `circleci.rs`,
//! `github.rs` and `argo.rs`, with what they share in `shared.rs`; `load.rs` finds and
//! reads the files. This file holds the model of a job, the report and the check, which
//! sees every system alike.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::ci::filter::{CircleciFilter, FilterError, GithubRefFilter, GoRegexFilter};
use crate::model::sdd::{nearest, SddError};
use crate::model::tag::{JobState, StepVerb, Tag, TrainId, Trigger};

mod argo;
mod circleci;
mod github;
mod load;
mod shared;
#[cfg(test)]
mod tests;

pub use load::{load, DoctorOptions, Inputs, SourceFile, SKIPPED_DIRS};

// ------------------------------------------------------------------ errors

/// Input `doctor` cannot use: a file that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A file or directory cannot be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("`{path}` is not valid YAML: {message}")]
    Yaml {
        /// The path.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A file is YAML, but not a configuration doctor can evaluate.
    #[error("`{path}`: {message}")]
    Invalid {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The step graph is invalid.
    #[error(transparent)]
    Sdd(#[from] SddError),
}

impl From<DoctorError> for crate::error::Error {
    fn from(e: DoctorError) -> Self {
        match e {
            DoctorError::Read { path, source } => crate::error::Error::Io {
                what: format!("cannot read `{path}`"),
                source,
            },
            DoctorError::Sdd(e) => crate::error::Error::Sdd(e),
            other => crate::error::Error::Input(other.to_string()),
        }
    }
}

fn invalid(path: &str, message: impl Into<String>) -> DoctorError {
    DoctorError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

fn bad_filter(path: &str, where_: &str, e: FilterError) -> DoctorError {
    invalid(path, format!("{where_}: {e}"))
}

// ------------------------------------------------------------------ the model

/// The CI system a job belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobSystem {
    /// A CircleCI workflow job.
    Circleci,
    /// A GitHub Actions workflow job.
    Github,
    /// An Argo Events Sensor dependency.
    Argo,
}

impl fmt::Display for JobSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobSystem::Circleci => "circleci",
            JobSystem::Github => "github",
            JobSystem::Argo => "argo",
        })
    }
}

/// One job of a CI configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct JobRef {
    /// Its CI system.
    pub system: JobSystem,
    /// The file that defines it.
    pub file: String,
    /// Its workflow (CircleCI, GitHub) or Sensor (Argo).
    pub workflow: String,
    /// Its name in the workflow, or the Sensor's dependency.
    pub job: String,
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.system {
            JobSystem::Argo => write!(
                f,
                "argo `{}`: sensor `{}`, dependency `{}`",
                self.file, self.workflow, self.job
            ),
            s => write!(
                f,
                "{s} `{}`: workflow `{}`, job `{}`",
                self.file, self.workflow, self.job
            ),
        }
    }
}

/// Which `locomotive` reports a job makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LocomotiveCalls {
    /// Reports `started` (on the normal path).
    pub started: bool,
    /// Reports `success` when the job succeeds.
    pub success: bool,
    /// Reports `failure` when the job fails.
    pub failure: bool,
    /// Reports `failure` on its normal path: a job that runs after a failed job it needs
    /// reports that failure.
    #[serde(skip)]
    failure_when_run: bool,
}

impl LocomotiveCalls {
    fn merge(&mut self, o: LocomotiveCalls) {
        self.started |= o.started;
        self.success |= o.success;
        self.failure |= o.failure;
        self.failure_when_run |= o.failure_when_run;
    }

    /// Keep the reports of a step that runs after success, after a failure, or both.
    fn gated(self, on_success: bool, on_failure: bool) -> Self {
        LocomotiveCalls {
            started: self.started && on_success,
            success: self.success && on_success,
            failure: self.failure && on_failure,
            failure_when_run: (self.failure || self.failure_when_run) && on_success,
        }
    }
}

/// How a job selects tags.
#[derive(Debug, Clone)]
enum TagFilter {
    /// Every tag (GitHub `on: push` without filters, `on: create`).
    All,
    Circleci(CircleciFilter),
    Github(GithubRefFilter),
    /// Argo data filters: the `body.ref` ones, plus `others` filters on other paths that
    /// a created tag is assumed to pass; `or` for `dataLogicalOperator: or`.
    Argo {
        refs: Vec<GoRegexFilter>,
        others: usize,
        or: bool,
    },
}

impl TagFilter {
    fn matches(&self, tag: &str) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Circleci(f) => f.matches(tag),
            TagFilter::Github(f) => f.matches(tag),
            TagFilter::Argo { refs, others, or } => {
                let r = format!("refs/tags/{tag}");
                if *or {
                    *others > 0 || refs.iter().any(|f| f.matches(&r))
                } else {
                    refs.iter().all(|f| f.matches(&r))
                }
            }
        }
    }

    fn sources(&self) -> Vec<String> {
        match self {
            TagFilter::All => vec![],
            TagFilter::Circleci(f) => f.sources().into_iter().map(String::from).collect(),
            TagFilter::Github(f) => f.sources().into_iter().map(String::from).collect(),
            TagFilter::Argo { refs, .. } => {
                refs.iter().flat_map(|f| f.sources().to_vec()).collect()
            }
        }
    }
}

/// A job as doctor sees it.
#[derive(Debug, Clone)]
struct Job {
    id: JobRef,
    /// `None`: runs for no tag.
    filter: Option<TagFilter>,
    /// Jobs of the same workflow it needs, directly.
    upstream: Vec<String>,
    /// Runs even when a job it needs failed.
    after_failure: bool,
    /// `None`: not checked, with the reason.
    calls: Result<LocomotiveCalls, String>,
}

// ------------------------------------------------------------------ the report

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// No job runs for the step's trigger tags.
    NoJob,
    /// A job runs for some of the step's trigger tags only.
    PartialMatch,
    /// A job also runs for the step's state or control tags, or for train tags.
    StateTagHazard,
    /// A job also runs for another step's tags.
    OtherStepHazard,
    /// A job reports no `started` (nor does a job it needs).
    MissingStart,
    /// A job reports no `success` (nor does a job that needs it).
    MissingSuccess,
    /// A job reports no `failure` when it fails.
    MissingFailure,
    /// A CircleCI job needs a job without tag filters.
    UpstreamWithoutTagFilters,
    /// A CircleCI job needs a job whose tag filters reject the trigger tag.
    UpstreamFilterMismatch,
    /// A CircleCI job needs a job its workflow does not have.
    UnknownUpstream,
    /// A job's tag filters match no step's trigger tags.
    UnusedFilter,
    /// A Sensor of a step has no `body.ref` filter.
    UnfilteredSensor,
    /// Something doctor could not check.
    NotChecked,
    /// A step runs on more than one CI system.
    SeveralSystems,
    /// The step graph has no single final step.
    NoDefaultTarget,
}

impl FindingKind {
    fn is_hazard(self) -> bool {
        matches!(
            self,
            FindingKind::StateTagHazard
                | FindingKind::OtherStepHazard
                | FindingKind::UnfilteredSensor
        )
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Makes doctor fail.
    Problem,
    /// For information.
    Note,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// How bad it is.
    pub severity: Severity,
    /// The job concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
    /// What was found.
    pub message: String,
    /// How to fix it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    fn problem(
        kind: FindingKind,
        job: Option<&JobRef>,
        message: String,
        hint: Option<String>,
    ) -> Self {
        Self {
            kind,
            severity: Severity::Problem,
            job: job.cloned(),
            message,
            hint,
        }
    }

    fn note(kind: FindingKind, job: Option<&JobRef>, message: String) -> Self {
        Self {
            kind,
            severity: Severity::Note,
            job: job.cloned(),
            message,
            hint: None,
        }
    }

    /// Whether it makes doctor fail.
    pub fn is_problem(&self) -> bool {
        self.severity == Severity::Problem
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Note {
            f.write_str("note: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// The verdict on one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Nothing wrong.
    Ok,
    /// Something it needs is missing: a job, a `locomotive` call, upstream tag filters.
    Missing,
    /// A job runs for tags it must not run for.
    Hazard,
}

impl StepStatus {
    /// The spelling in the text report.
    pub fn label(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Missing => "MISSING",
            StepStatus::Hazard => "HAZARD",
        }
    }
}

/// How a step takes part in a train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepRole {
    /// Triggered as a CI job.
    Job,
    /// Never triggered; done when its dependencies are.
    Virtual,
    /// A manual gate, unblocked by `konductor unblock`.
    Manual,
    /// A final step: never triggered.
    Target,
}

/// The findings on one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    pub step: String,
    /// How it takes part in a train.
    pub role: StepRole,
    /// The verdict.
    pub status: StepStatus,
    /// The jobs its trigger tags start.
    pub jobs: Vec<JobRef>,
    /// What was found.
    pub findings: Vec<Finding>,
}

/// Everything doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The SDD read.
    pub sdd: String,
    /// The final step the roles are computed for, if the graph has one.
    pub target: Option<String>,
    /// The CI configuration files read.
    pub files: Vec<String>,
    /// One entry per step, in file order.
    pub steps: Vec<StepReport>,
    /// Findings not about one step.
    pub global: Vec<Finding>,
}

impl Report {
    /// The number of problems (findings that make doctor fail).
    pub fn problems(&self) -> usize {
        self.steps
            .iter()
            .flat_map(|s| &s.findings)
            .chain(&self.global)
            .filter(|f| f.is_problem())
            .count()
    }

    /// Whether doctor found no problem.
    pub fn is_clean(&self) -> bool {
        self.problems() == 0
    }

    /// The human form: one line per step, details indented, then the global findings and
    /// a summary.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(&format!("{:<7} {}", s.status.label(), s.step));
            match s.role {
                StepRole::Job => {}
                StepRole::Virtual => out.push_str(" (virtual: never triggered)"),
                StepRole::Manual => out.push_str(" (manual gate: never triggered)"),
                StepRole::Target => out.push_str(" (final step: never triggered)"),
            }
            out.push('\n');
            for j in &s.jobs {
                out.push_str(&format!("        job: {j}\n"));
            }
            for f in &s.findings {
                out.push_str(&format!("        {f}\n"));
            }
        }
        if !self.global.is_empty() {
            out.push_str("global:\n");
            for f in &self.global {
                out.push_str(&format!("        {f}\n"));
            }
        }
        let count = |st: StepStatus| self.steps.iter().filter(|s| s.status == st).count();
        let problems = self.problems();
        out.push_str(&format!(
            "{} steps: {} ok, {} missing, {} hazard; {}\n",
            self.steps.len(),
            count(StepStatus::Ok),
            count(StepStatus::Missing),
            count(StepStatus::Hazard),
            match problems {
                0 => "no problems".to_string(),
                1 => "1 problem".to_string(),
                n => format!("{n} problems"),
            }
        ));
        out
    }
}

// ------------------------------------------------------------------ the check

/// The trigger tags doctor probes a step's jobs with.
pub fn probe_triggers(step: &str) -> [String; 2] {
    [
        Trigger::new(TrainId::new(1, 0), step, 1).tag().to_string(),
        Trigger::new(TrainId::new(42, 3), step, 17)
            .tag()
            .to_string(),
    ]
}

/// The tags that must never start a step's job: its state tags, its control tags, the
/// train's cancellation and the train tags.
pub fn forbidden_tags(step: &str) -> Vec<String> {
    let mut tags = Vec::new();
    for (train, job) in [(TrainId::new(1, 0), 1), (TrainId::new(42, 3), 17)] {
        let tr = Trigger::new(train, step, job);
        tags.extend(JobState::ALL.iter().map(|s| tr.state_tag(*s)));
        tags.push(Tag::Step(train, step.to_string(), StepVerb::Unblocked));
        tags.push(Tag::Step(train, step.to_string(), StepVerb::Skipped));
        tags.push(Tag::Cancelled(train));
        tags.push(Tag::Train(train));
    }
    tags.iter().map(Tag::to_string).collect()
}

fn list_tags(tags: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = tags
        .iter()
        .take(SHOWN)
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if tags.len() > SHOWN {
        s.push_str(&format!(" and {} more", tags.len() - SHOWN));
    }
    s
}

fn hint_filter(system: JobSystem, step: &str) -> String {
    match system {
        JobSystem::Circleci => {
            format!("use the filter printed by `konductor ci-filter --step {step} --for circleci`")
        }
        JobSystem::Github => {
            format!("use the patterns printed by `konductor ci-filter --step {step} --for github`")
        }
        JobSystem::Argo => format!(
            "anchor the `body.ref` filter at both ends: `^refs/tags/release=[0-9]+\\.[0-9]+={step}\\.[0-9]+$`"
        ),
    }
}

fn hint_start(system: JobSystem) -> String {
    match system {
        JobSystem::Circleci => "add `konductor/locomotive-on-start` as its first step".into(),
        JobSystem::Github => {
            "add a first step using the Konductor action with `phase: start`".into()
        }
        JobSystem::Argo => "report `started` with `locomotive set-step-state` first".into(),
    }
}

fn hint_end(system: JobSystem) -> String {
    match system {
        JobSystem::Circleci => "add `konductor/locomotive-on-end` as its last step".into(),
        JobSystem::Github => "add last steps using the Konductor action with `phase: end`: `status: success` under `if: success()`, `status: failure` under `if: failure()`".into(),
        JobSystem::Argo => "report the outcome from the workflow's `onExit` handler".into(),
    }
}

/// Run every check.
pub fn check(inputs: &Inputs) -> Result<Report, DoctorError> {
    let sdd = &inputs.sdd;
    let mut global = Vec::new();
    let mut jobs = Vec::new();
    for f in &inputs.circleci {
        jobs.extend(circleci::jobs(f, &mut global)?);
    }
    for f in &inputs.github {
        jobs.extend(github::jobs(f)?);
    }
    jobs.extend(argo::jobs(&inputs.argo, &mut global)?);

    let sinks = sdd.sinks();
    let target = match sdd.default_target() {
        Ok(t) => Some(t.to_string()),
        Err(e) => {
            global.push(Finding::note(FindingKind::NoDefaultTarget, None, e));
            None
        }
    };
    let runs = |s: &str| match &target {
        Some(t) => sdd.runs(s, t),
        None => sinks.iter().all(|t| sdd.runs(s, t)),
    };
    let running: Vec<&str> = sdd
        .steps()
        .iter()
        .map(|s| s.name.as_str())
        .filter(|s| runs(s))
        .collect();

    // The workflow of each job, by name, to follow `requires` / `needs`.
    let index: BTreeMap<(JobSystem, &str, &str, &str), usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            (
                (
                    j.id.system,
                    j.id.file.as_str(),
                    j.id.workflow.as_str(),
                    j.id.job.as_str(),
                ),
                i,
            )
        })
        .collect();
    let lookup = |j: &Job, name: &str| {
        index
            .get(&(
                j.id.system,
                j.id.file.as_str(),
                j.id.workflow.as_str(),
                name,
            ))
            .copied()
    };
    // Whether job `d` needs job `u` directly.
    let needs = |d: usize, u: usize| {
        jobs[d]
            .upstream
            .iter()
            .any(|n| lookup(&jobs[d], n) == Some(u))
    };
    let matches = |j: &Job, tag: &str| j.filter.as_ref().is_some_and(|f| f.matches(tag));
    // The tags among `tags` that start job `j` (`runs`) or that do not (`!runs`).
    let select = |j: &Job, tags: &[String], runs: bool| -> Vec<String> {
        tags.iter()
            .filter(|t| matches(j, t) == runs)
            .cloned()
            .collect()
    };
    let every_job: BTreeSet<usize> = (0..jobs.len()).collect();

    let mut steps = Vec::new();
    for step in sdd.steps() {
        let name = step.name.as_str();
        let role = if !runs(name) {
            if step.is_virtual {
                StepRole::Virtual
            } else if step.manual {
                StepRole::Manual
            } else {
                StepRole::Target
            }
        } else {
            StepRole::Job
        };
        let probes = probe_triggers(name);
        let matching: Vec<usize> = (0..jobs.len())
            .filter(|&i| probes.iter().any(|t| matches(&jobs[i], t)))
            .collect();
        let mut findings = Vec::new();
        if role != StepRole::Job {
            steps.push(StepReport {
                step: name.to_string(),
                role,
                status: StepStatus::Ok,
                jobs: matching.iter().map(|&i| jobs[i].id.clone()).collect(),
                findings,
            });
            continue;
        }
        if matching.is_empty() {
            findings.push(Finding::problem(
                FindingKind::NoJob,
                None,
                format!("no job runs for its trigger tags, e.g. `{}`", probes[0]),
                Some(format!(
                    "give its job the filter printed by `konductor ci-filter --step {name} --for circleci|github`"
                )),
            ));
        }
        let in_step: BTreeSet<usize> = matching.iter().copied().collect();
        let forbidden = forbidden_tags(name);
        for &i in &matching {
            let job = &jobs[i];
            let id = &job.id;
            let missed = select(job, &probes, false);
            if !missed.is_empty() {
                findings.push(Finding::problem(
                    FindingKind::PartialMatch,
                    Some(id),
                    format!(
                        "{id} does not run for the trigger tag {}",
                        list_tags(&missed)
                    ),
                    None,
                ));
            }
            let hits = select(job, &forbidden, true);
            if !hits.is_empty() {
                findings.push(Finding::problem(
                    FindingKind::StateTagHazard,
                    Some(id),
                    format!(
                        "{id} also runs for {}: the tags `locomotive` and `konductor` push would start it again",
                        list_tags(&hits)
                    ),
                    Some(hint_filter(id.system, name)),
                ));
            }
            for other in running.iter().filter(|o| **o != name) {
                let mut tags = probe_triggers(other).to_vec();
                tags.push(format!("{}=started", tags[0]));
                let hits = select(job, &tags, true);
                if !hits.is_empty() {
                    findings.push(Finding::problem(
                        FindingKind::OtherStepHazard,
                        Some(id),
                        format!("{id} also runs for {} of step `{other}`", list_tags(&hits)),
                        None,
                    ));
                }
            }
            // locomotive: `started` from this job or one it needs, `success` from this job
            // or one that needs it, `failure` from this job or one that runs after it fails.
            match &job.calls {
                Err(why) => findings.push(Finding::note(
                    FindingKind::NotChecked,
                    Some(id),
                    format!("{why}: its `locomotive` calls are not checked"),
                )),
                Ok(calls) => {
                    // Upstream jobs count even when their filters are wrong: that is
                    // reported on its own below.
                    let ups = closure(i, &every_job, |j| {
                        jobs[j]
                            .upstream
                            .iter()
                            .filter_map(|u| lookup(&jobs[j], u))
                            .collect()
                    });
                    let downs = closure(i, &in_step, |j| {
                        in_step.iter().copied().filter(|&d| needs(d, j)).collect()
                    });
                    let reports = |j: usize, f: fn(&LocomotiveCalls) -> bool| {
                        jobs[j].calls.as_ref().is_ok_and(f)
                    };
                    if !calls.started && !ups.iter().any(|&u| reports(u, |c| c.started)) {
                        findings.push(Finding::problem(
                            FindingKind::MissingStart,
                            Some(id),
                            format!("{id} never reports `started` (nor does a job it needs)"),
                            Some(hint_start(id.system)),
                        ));
                    }
                    if !calls.success && !downs.iter().any(|&d| reports(d, |c| c.success)) {
                        findings.push(Finding::problem(
                            FindingKind::MissingSuccess,
                            Some(id),
                            format!(
                                "{id} never reports `success` at its end (nor does a job that needs it)"
                            ),
                            Some(hint_end(id.system)),
                        ));
                    }
                    let failure_downstream = in_step.iter().any(|&d| {
                        jobs[d].after_failure
                            && reports(d, |c| c.failure || c.failure_when_run)
                            && needs(d, i)
                    });
                    if !calls.failure && !failure_downstream {
                        findings.push(Finding::problem(
                            FindingKind::MissingFailure,
                            Some(id),
                            format!("{id} never reports `failure` when it fails"),
                            Some(hint_end(id.system)),
                        ));
                    }
                }
            }
            // CircleCI runs a job for a tag only if every job it needs has tag filters.
            if id.system == JobSystem::Circleci {
                let mut seen = BTreeSet::new();
                let mut stack: Vec<(usize, String)> =
                    job.upstream.iter().map(|u| (i, u.clone())).collect();
                while let Some((from, up)) = stack.pop() {
                    if !seen.insert(up.clone()) {
                        continue;
                    }
                    let Some(u) = lookup(&jobs[from], &up) else {
                        findings.push(Finding::problem(
                            FindingKind::UnknownUpstream,
                            Some(id),
                            format!(
                                "{id} needs `{up}`, which workflow `{}` does not have",
                                id.workflow
                            ),
                            None,
                        ));
                        continue;
                    };
                    match &jobs[u].filter {
                        None => findings.push(Finding::problem(
                            FindingKind::UpstreamWithoutTagFilters,
                            Some(id),
                            format!(
                                "{id} needs `{up}`, which has no tag filters: CircleCI then runs neither for tags"
                            ),
                            Some(format!(
                                "give `{up}` the same tag filters (`konductor ci-filter --step {name} --for circleci`)"
                            )),
                        )),
                        Some(f) if !probes.iter().all(|t| f.matches(t)) => {
                            findings.push(Finding::problem(
                                FindingKind::UpstreamFilterMismatch,
                                Some(id),
                                format!(
                                    "{id} needs `{up}`, whose tag filters do not match `{}`",
                                    probes[0]
                                ),
                                Some(format!("give `{up}` the same tag filters as `{}`", id.job)),
                            ))
                        }
                        Some(_) => {}
                    }
                    stack.extend(jobs[u].upstream.iter().map(|n| (u, n.clone())));
                }
            }
        }
        let systems: BTreeSet<JobSystem> = matching.iter().map(|&i| jobs[i].id.system).collect();
        if systems.len() > 1 {
            findings.push(Finding::note(
                FindingKind::SeveralSystems,
                None,
                format!(
                    "runs on {} CI systems ({}): each trigger tag starts them all, and the first report wins",
                    systems.len(),
                    systems.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let status = if findings
            .iter()
            .any(|f| f.is_problem() && f.kind.is_hazard())
        {
            StepStatus::Hazard
        } else if findings.iter().any(Finding::is_problem) {
            StepStatus::Missing
        } else {
            StepStatus::Ok
        };
        steps.push(StepReport {
            step: name.to_string(),
            role,
            status,
            jobs: matching.iter().map(|&i| jobs[i].id.clone()).collect(),
            findings,
        });
    }

    // Jobs that run for tags, but for no running step's trigger tags.
    let all_names: Vec<&str> = sdd.steps().iter().map(|s| s.name.as_str()).collect();
    for job in &jobs {
        let Some(filter) = &job.filter else { continue };
        let id = &job.id;
        if running
            .iter()
            .any(|s| probe_triggers(s).iter().any(|t| filter.matches(t)))
        {
            continue;
        }
        let forbidden: Vec<String> = all_names
            .iter()
            .flat_map(|s| forbidden_tags(s))
            .filter(|t| filter.matches(t))
            .collect();
        let idle = all_names
            .iter()
            .find(|s| probe_triggers(s).iter().any(|t| filter.matches(t)));
        let sources = filter.sources();
        if !forbidden.is_empty() {
            global.push(Finding::problem(
                FindingKind::StateTagHazard,
                Some(id),
                format!(
                    "{id} runs for {}, but for no step's trigger tags",
                    list_tags(&forbidden)
                ),
                None,
            ));
        } else if let Some(s) = idle {
            global.push(Finding::problem(
                FindingKind::UnusedFilter,
                Some(id),
                format!(
                    "{id} runs for the trigger tags of step `{s}`, which Konductor never triggers"
                ),
                None,
            ));
        } else if sources.iter().any(|s| s.contains("release=")) {
            let hint = sources
                .iter()
                .flat_map(|s| {
                    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                        .filter(|w| w.len() > 1 && *w != "release")
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .find_map(|w| {
                    nearest(&w, running.iter().copied())
                        .filter(|n| *n != w)
                        .map(|n| format!("`{w}` is not a step; did you mean `{n}`?"))
                });
            global.push(Finding::problem(
                FindingKind::UnusedFilter,
                Some(id),
                format!(
                    "{id} has tag filters ({}) that match no step's trigger tags",
                    sources
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                hint,
            ));
        } else {
            global.push(Finding::note(
                FindingKind::UnusedFilter,
                Some(id),
                format!("{id} runs for tags, but for none of Konductor's"),
            ));
        }
    }

    if inputs.circleci.is_empty() && inputs.github.is_empty() && jobs.is_empty() {
        global.push(Finding::note(
            FindingKind::NotChecked,
            None,
            "no CircleCI config, GitHub workflow or Argo Sensor was found; point at them with `--circleci`, `--github-dir` and `--argo-dir`".into(),
        ));
    }
    let mut files: Vec<String> = inputs
        .circleci
        .iter()
        .chain(&inputs.github)
        .chain(&inputs.argo)
        .map(|f| f.path.clone())
        .collect();
    files.dedup();
    Ok(Report {
        sdd: sdd.source.clone(),
        target,
        files,
        steps,
        global,
    })
}

/// The jobs reachable from `start` through `next`, within `within`, `start` excluded.
fn closure(
    start: usize,
    within: &BTreeSet<usize>,
    next: impl Fn(usize) -> Vec<usize>,
) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = next(start);
    while let Some(j) = stack.pop() {
        if within.contains(&j) && j != start && seen.insert(j) {
            stack.extend(next(j));
        }
    }
    seen
}
