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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize as _, Serialize};
use serde_yaml::{Mapping, Value};

use crate::ci::filter::{CircleciFilter, FilterError, GithubRefFilter, GoRegexFilter};
use crate::sdd::{nearest, Sdd, SddError};
use crate::tag::{JobState, StepVerb, Tag, TrainId, Trigger};

/// Directories never searched for Argo manifests.
pub const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

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

// ------------------------------------------------------------------ inputs

/// Where to find the step graph and the CI configuration.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The repository: the default place of everything below.
    pub repo: PathBuf,
    /// The SDD; `<repo>/sdd.yaml` when `None`.
    pub sdd: Option<PathBuf>,
    /// The CircleCI config; `<repo>/.circleci/config.yml`, if it exists, when `None`.
    pub circleci: Option<PathBuf>,
    /// The GitHub workflows; `<repo>/.github/workflows`, if it exists, when `None`.
    pub github_dir: Option<PathBuf>,
    /// Where to search for Argo manifests (recursively); `<repo>` when `None`.
    pub argo_dir: Option<PathBuf>,
}

/// One file read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path, for messages.
    pub path: String,
    /// The contents.
    pub text: String,
}

impl SourceFile {
    /// A file from its path (for messages) and contents.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// Everything doctor reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The step graph.
    pub sdd: Sdd,
    /// CircleCI configs (zero or one).
    pub circleci: Vec<SourceFile>,
    /// GitHub workflow files.
    pub github: Vec<SourceFile>,
    /// Files with Argo Sensors or WorkflowTemplates.
    pub argo: Vec<SourceFile>,
}

fn shown(p: &Path) -> String {
    p.strip_prefix(".").unwrap_or(p).display().to_string()
}

fn read(p: &Path) -> Result<String, DoctorError> {
    std::fs::read_to_string(p).map_err(|e| DoctorError::Read {
        path: shown(p),
        source: e,
    })
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// Whether a file declares one of the Argo kinds doctor reads.
fn mentions_argo_kind(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start_matches([' ', '-']).trim();
        l.strip_prefix("kind:").is_some_and(|k| {
            matches!(
                k.trim().trim_matches(['"', '\'']),
                "Sensor" | "WorkflowTemplate" | "ClusterWorkflowTemplate"
            )
        })
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DoctorError> {
    let err = |e| DoctorError::Read {
        path: shown(dir),
        source: e,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ty = e.file_type().map_err(err)?;
        let p = e.path();
        if ty.is_dir() {
            let name = e.file_name();
            if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                walk(&p, out)?;
            }
        } else if ty.is_file() && is_yaml(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Read the step graph and every CI configuration file the options point at.
pub fn load(opts: &DoctorOptions) -> Result<Inputs, DoctorError> {
    let sdd_path = opts
        .sdd
        .clone()
        .unwrap_or_else(|| opts.repo.join("sdd.yaml"));
    let text = crate::sdd::read_file(&sdd_path).map_err(|e| DoctorError::Read {
        path: shown(&sdd_path),
        source: e,
    })?;
    let sdd = Sdd::parse(&shown(&sdd_path), &text)?;

    let mut circleci = Vec::new();
    let cc = match &opts.circleci {
        Some(p) => Some(p.clone()),
        None => Some(opts.repo.join(".circleci/config.yml")).filter(|p| p.is_file()),
    };
    if let Some(p) = cc {
        circleci.push(SourceFile::new(shown(&p), read(&p)?));
    }

    let mut github = Vec::new();
    let gh_dir = match &opts.github_dir {
        Some(p) => Some(p.clone()),
        None => Some(opts.repo.join(".github/workflows")).filter(|p| p.is_dir()),
    };
    if let Some(dir) = gh_dir {
        let err = |e| DoctorError::Read {
            path: shown(&dir),
            source: e,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        files.retain(|p| p.is_file() && is_yaml(p));
        files.sort();
        for p in files {
            github.push(SourceFile::new(shown(&p), read(&p)?));
        }
    }

    let mut argo = Vec::new();
    let mut files = Vec::new();
    walk(opts.argo_dir.as_ref().unwrap_or(&opts.repo), &mut files)?;
    for p in files {
        let text = read(&p)?;
        if mentions_argo_kind(&text) {
            argo.push(SourceFile::new(shown(&p), text));
        }
    }
    Ok(Inputs {
        sdd,
        circleci,
        github,
        argo,
    })
}

fn yaml_docs(file: &SourceFile) -> Result<Vec<Value>, DoctorError> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(&file.text) {
        let mut v = Value::deserialize(de).map_err(|e| DoctorError::Yaml {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        v.apply_merge().map_err(|e| DoctorError::Yaml {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
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

// ------------------------------------------------------------------ locomotive calls

/// The states a script reports, if it runs `set-step-state` (the `locomotive` subcommand,
/// or the orb's `set-step-state.sh`). A state given as a variable is looked up in the
/// step's environment; if it is not there, the script is taken to report the outcome.
fn script_calls(script: &str, env: &[String]) -> LocomotiveCalls {
    let mut c = LocomotiveCalls::default();
    if !script.contains("set-step-state") {
        return c;
    }
    let mut found = false;
    let set = |s: &str, c: &mut LocomotiveCalls| match s {
        "started" => {
            c.started = true;
            true
        }
        "success" => {
            c.success = true;
            true
        }
        "failure" => {
            c.failure = true;
            true
        }
        _ => false,
    };
    let mut rest = script;
    let mut variable = false;
    while let Some(at) = rest.find("--state-name") {
        rest = &rest[at + "--state-name".len()..];
        let word: String = rest
            .trim_start_matches([' ', '=', '\t', '\\', '\n'])
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '{' | '_'))
            .collect();
        if set(&word, &mut c) {
            found = true;
        } else {
            variable = true;
        }
    }
    if !found {
        for v in env {
            found |= set(v, &mut c);
        }
    }
    if !found && (variable || script.contains("set-step-state.sh")) {
        c.success = true;
        c.failure = true;
    }
    c
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

fn env_values(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m
            .values()
            .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
            .collect(),
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(|v| v.as_str())
            .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.trim().to_string()))
            .collect(),
        _ => vec![],
    }
}

/// CircleCI: the config's local commands and orbs, to follow named steps.
struct CircleciCtx<'a> {
    commands: Option<&'a Mapping>,
    orbs: Option<&'a Mapping>,
}

impl CircleciCtx<'_> {
    fn steps(&self, steps: Option<&Value>, depth: usize) -> LocomotiveCalls {
        let mut calls = LocomotiveCalls::default();
        let Some(Value::Sequence(steps)) = steps else {
            return calls;
        };
        if depth > 16 {
            return calls;
        }
        for item in steps {
            match item {
                Value::String(name) => calls.merge(self.named(name, None, depth)),
                Value::Mapping(m) => {
                    for (k, v) in m {
                        let Some(k) = k.as_str() else { continue };
                        match k {
                            "run" => calls.merge(circleci_run(v)),
                            "when" | "unless" => calls.merge(self.steps(v.get("steps"), depth + 1)),
                            name => calls.merge(self.named(name, v.as_mapping(), depth)),
                        }
                    }
                }
                _ => {}
            }
        }
        calls
    }

    fn named(&self, name: &str, params: Option<&Mapping>, depth: usize) -> LocomotiveCalls {
        if let Some((alias, cmd)) = name.split_once('/') {
            // An inline orb: follow its command.
            if let Some(def) = self
                .orbs
                .and_then(|o| o.get(alias))
                .and_then(|o| o.get("commands"))
                .and_then(|c| c.get(cmd))
            {
                let inner = CircleciCtx {
                    commands: self
                        .orbs
                        .and_then(|o| o.get(alias))
                        .and_then(|o| o.get("commands"))
                        .and_then(Value::as_mapping),
                    orbs: None,
                };
                return inner.steps(def.get("steps"), depth + 1);
            }
            // The Konductor orb's commands (orbs/konductor/src/commands).
            return match cmd {
                "locomotive-on-start" => LocomotiveCalls {
                    started: true,
                    ..Default::default()
                },
                "locomotive-on-end" => {
                    let report_success = match params.and_then(|p| p.get("report-success")) {
                        Some(Value::Bool(b)) => *b,
                        Some(Value::String(v)) => v.trim() != "false",
                        _ => true,
                    };
                    LocomotiveCalls {
                        success: report_success,
                        failure: true,
                        ..Default::default()
                    }
                }
                _ => LocomotiveCalls::default(),
            };
        }
        match self.commands.and_then(|c| c.get(name)) {
            Some(def) => self.steps(def.get("steps"), depth + 1),
            None => LocomotiveCalls::default(),
        }
    }
}

/// A CircleCI `run` step; `when` decides whether it runs after a failure.
fn circleci_run(v: &Value) -> LocomotiveCalls {
    let (command, env, when) = match v {
        Value::String(s) => (s.as_str(), vec![], "on_success"),
        Value::Mapping(_) => (
            v.get("command").and_then(Value::as_str).unwrap_or(""),
            env_values(v.get("environment")),
            v.get("when")
                .and_then(Value::as_str)
                .unwrap_or("on_success"),
        ),
        _ => return LocomotiveCalls::default(),
    };
    let (on_success, on_failure) = match when {
        "on_fail" => (false, true),
        "always" => (true, true),
        _ => (true, false),
    };
    script_calls(command, &env).gated(on_success, on_failure)
}

/// When a GitHub step or job with this `if:` runs: (after success, after a failure).
fn github_when(cond: Option<&Value>) -> (bool, bool) {
    let s = match cond {
        None => return (true, false),
        Some(Value::Bool(b)) => return (*b, false),
        Some(Value::String(s)) => s.replace(' ', ""),
        Some(_) => return (true, false),
    };
    if s.contains("always()") || s.contains("!cancelled()") {
        (true, true)
    } else if s.contains("failure()") {
        (s.contains("success()"), true)
    } else {
        (true, false)
    }
}

/// Whether `uses:` names the Konductor GitHub Action (integrations/github).
fn is_konductor_action(uses: &str) -> bool {
    let path = uses.split('@').next().unwrap_or(uses);
    path.ends_with("/integrations/github")
        || path == "./integrations/github"
        || path.to_ascii_lowercase().contains("konductor")
}

fn github_steps(steps: Option<&Value>) -> LocomotiveCalls {
    let mut calls = LocomotiveCalls::default();
    let Some(Value::Sequence(steps)) = steps else {
        return calls;
    };
    for st in steps {
        let (on_success, on_failure) = github_when(st.get("if"));
        let mut c = LocomotiveCalls::default();
        if let Some(uses) = st.get("uses").and_then(Value::as_str) {
            if is_konductor_action(uses) {
                let with = st.get("with");
                let get = |k: &str| {
                    with.and_then(|w| w.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .trim()
                        .to_string()
                };
                match get("phase").as_str() {
                    "start" => c.started = true,
                    "end" => match get("status").as_str() {
                        "success" => c.success = true,
                        "failure" => c.failure = true,
                        s if s.contains("${{") => {
                            c.success = true;
                            c.failure = true;
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        if let Some(run) = st.get("run").and_then(Value::as_str) {
            c.merge(script_calls(run, &env_values(st.get("env"))));
        }
        calls.merge(c.gated(on_success, on_failure));
    }
    calls
}

/// Argo: the reports a submitted Workflow (and the WorkflowTemplate it references) makes,
/// from the strings in it: a `set-step-state` script, and the states passed to it.
fn argo_calls(values: &[&Value]) -> LocomotiveCalls {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Sequence(s) => s.iter().for_each(|v| strings(v, out)),
            Value::Mapping(m) => m.values().for_each(|v| strings(v, out)),
            Value::Tagged(t) => strings(&t.value, out),
            _ => {}
        }
    }
    let mut all = Vec::new();
    for v in values {
        strings(v, &mut all);
    }
    if !all.iter().any(|s| s.contains("set-step-state")) {
        return LocomotiveCalls::default();
    }
    let has = |state: &str| {
        all.iter()
            .any(|s| s.trim() == state || s.contains(&format!("--state-name {state}")))
    };
    LocomotiveCalls {
        started: has("started"),
        success: has("success"),
        failure: has("failure"),
        ..Default::default()
    }
}

// ------------------------------------------------------------------ reading configs

fn circleci_jobs(file: &SourceFile, notes: &mut Vec<Finding>) -> Result<Vec<Job>, DoctorError> {
    let path = &file.path;
    let mut jobs = Vec::new();
    for doc in yaml_docs(file)? {
        let Value::Mapping(root) = &doc else {
            return Err(invalid(path, "a CircleCI config must be a map"));
        };
        let ctx = CircleciCtx {
            commands: root.get("commands").and_then(Value::as_mapping),
            orbs: root.get("orbs").and_then(Value::as_mapping),
        };
        let defs = root.get("jobs").and_then(Value::as_mapping);
        let Some(workflows) = root.get("workflows") else {
            continue;
        };
        let Value::Mapping(workflows) = workflows else {
            return Err(invalid(path, "`workflows` must be a map"));
        };
        for (wf_name, wf) in workflows {
            let Some(wf_name) = wf_name.as_str() else {
                continue;
            };
            if wf_name == "version" {
                continue;
            }
            let entries = match wf.get("jobs") {
                Some(Value::Sequence(s)) => s.as_slice(),
                None | Some(Value::Null) => &[],
                Some(_) => {
                    return Err(invalid(
                        path,
                        format!("`jobs` of workflow `{wf_name}` must be a list"),
                    ))
                }
            };
            for entry in entries {
                let (key, conf) = match entry {
                    Value::String(s) => (s.as_str(), None),
                    Value::Mapping(m) if m.len() == 1 => {
                        let (k, v) = m.iter().next().expect("one entry");
                        let Some(k) = k.as_str() else {
                            return Err(invalid(
                                path,
                                format!("workflow `{wf_name}`: a job name must be text"),
                            ));
                        };
                        (k, v.as_mapping())
                    }
                    _ => {
                        return Err(invalid(
                            path,
                            format!(
                            "workflow `{wf_name}`: each job must be a name or a map with one key"
                        ),
                        ))
                    }
                };
                let get = |k: &str| conf.and_then(|c| c.get(k));
                let name = get("name").and_then(Value::as_str).unwrap_or(key);
                let where_ = format!("workflow `{wf_name}`, job `{name}`");
                let filter = match get("filters") {
                    None | Some(Value::Null) => None,
                    Some(Value::Mapping(f)) => match f.get("tags") {
                        None | Some(Value::Null) => None,
                        Some(Value::Mapping(t)) => {
                            let only = t.get("only").map(|v| str_list(Some(v)));
                            let ignore = str_list(t.get("ignore"));
                            if only.is_none() && ignore.is_empty() {
                                None
                            } else {
                                Some(TagFilter::Circleci(
                                    CircleciFilter::new(only.as_deref(), &ignore)
                                        .map_err(|e| bad_filter(path, &where_, e))?,
                                ))
                            }
                        }
                        Some(_) => {
                            return Err(invalid(
                                path,
                                format!("{where_}: `filters.tags` must be a map"),
                            ))
                        }
                    },
                    Some(Value::String(expr)) => {
                        notes.push(Finding::note(
                            FindingKind::NotChecked,
                            None,
                            format!(
                                "`{path}`: {where_}: expression filter `{expr}` is not evaluated"
                            ),
                        ));
                        None
                    }
                    Some(_) => {
                        return Err(invalid(path, format!("{where_}: `filters` must be a map")))
                    }
                };
                let mut upstream = Vec::new();
                let mut after_failure = false;
                if let Some(Value::Sequence(req)) = get("requires") {
                    for r in req {
                        match r {
                            Value::String(s) => upstream.push(s.clone()),
                            Value::Mapping(m) => {
                                for (k, v) in m {
                                    if let Some(k) = k.as_str() {
                                        upstream.push(k.to_string());
                                        after_failure |= str_list(Some(v))
                                            .iter()
                                            .any(|s| s == "failed" || s == "terminal");
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                let calls = if get("type").and_then(Value::as_str) == Some("approval") {
                    Ok(LocomotiveCalls::default())
                } else if let Some(def) = defs.and_then(|d| d.get(key)) {
                    let mut c = ctx.steps(get("pre-steps"), 0);
                    c.merge(ctx.steps(def.get("steps"), 0));
                    c.merge(ctx.steps(get("post-steps"), 0));
                    Ok(c)
                } else if let Some((alias, job)) = key.split_once('/') {
                    match ctx
                        .orbs
                        .and_then(|o| o.get(alias))
                        .and_then(|o| o.get("jobs"))
                        .and_then(|j| j.get(job))
                    {
                        Some(def) => {
                            let inner = CircleciCtx {
                                commands: ctx
                                    .orbs
                                    .and_then(|o| o.get(alias))
                                    .and_then(|o| o.get("commands"))
                                    .and_then(Value::as_mapping),
                                orbs: None,
                            };
                            Ok(inner.steps(def.get("steps"), 0))
                        }
                        None => Err(format!(
                            "job `{key}` is defined in the orb `{alias}`, which doctor cannot read"
                        )),
                    }
                } else {
                    return Err(invalid(
                        path,
                        format!("{where_}: no job `{key}` is defined under `jobs`"),
                    ));
                };
                jobs.push(Job {
                    id: JobRef {
                        system: JobSystem::Circleci,
                        file: path.clone(),
                        workflow: wf_name.to_string(),
                        job: name.to_string(),
                    },
                    filter,
                    upstream,
                    after_failure,
                    calls,
                });
            }
        }
    }
    Ok(jobs)
}

fn github_filter(path: &str, on: Option<&Value>) -> Result<Option<TagFilter>, DoctorError> {
    let is_tag_event = |s: &str| s == "push" || s == "create";
    let push = match on {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => return Ok(is_tag_event(s).then_some(TagFilter::All)),
        Some(Value::Sequence(events)) => {
            let any = events.iter().any(|e| e.as_str().is_some_and(is_tag_event));
            return Ok(any.then_some(TagFilter::All));
        }
        Some(Value::Mapping(m)) => {
            // `create` runs for every new tag; it takes no filters.
            if m.contains_key("create") {
                return Ok(Some(TagFilter::All));
            }
            match m.get("push") {
                None => return Ok(None),
                Some(Value::Null) => return Ok(Some(TagFilter::All)),
                Some(Value::Mapping(p)) => p,
                Some(_) => return Err(invalid(path, "`on.push` must be a map")),
            }
        }
        Some(_) => return Err(invalid(path, "`on` must be an event, a list or a map")),
    };
    let list = |key: &str| -> Result<Option<Vec<String>>, DoctorError> {
        match push.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Sequence(s)) => s
                .iter()
                .map(|v| {
                    v.as_str().map(String::from).ok_or_else(|| {
                        invalid(path, format!("`on.push.{key}` must be a list of patterns"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid(
                path,
                format!("`on.push.{key}` must be a list of patterns"),
            )),
        }
    };
    let tags = list("tags")?;
    let ignore = list("tags-ignore")?;
    if tags.is_some() && ignore.is_some() {
        return Err(invalid(
            path,
            "`on.push` has both `tags` and `tags-ignore`, which GitHub refuses; use `!` patterns in `tags`",
        ));
    }
    if tags.is_none() && ignore.is_none() {
        // Branch filters alone: no tag starts it. No filters (or only `paths`, which
        // tag pushes ignore): every tag does.
        let branches = push.contains_key("branches") || push.contains_key("branches-ignore");
        return Ok((!branches).then_some(TagFilter::All));
    }
    let f = GithubRefFilter::new(tags.as_deref(), &ignore.unwrap_or_default())
        .map_err(|e| bad_filter(path, "`on.push`", e))?;
    Ok(Some(TagFilter::Github(f)))
}

fn github_jobs(file: &SourceFile) -> Result<Vec<Job>, DoctorError> {
    let path = &file.path;
    let docs = yaml_docs(file)?;
    let Some(doc) = docs.first() else {
        return Ok(vec![]);
    };
    let Value::Mapping(root) = doc else {
        return Err(invalid(path, "a GitHub workflow must be a map"));
    };
    // YAML 1.1 readers take a bare `on` for `true`; accept both spellings.
    let on = root.get("on").or_else(|| root.get(Value::Bool(true)));
    let filter = github_filter(path, on)?;
    let workflow = root
        .get("name")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| {
            Path::new(path)
                .file_stem()
                .map_or(path.clone(), |s| s.to_string_lossy().into_owned())
        });
    let mut jobs = Vec::new();
    let Some(Value::Mapping(defs)) = root.get("jobs") else {
        return Ok(jobs);
    };
    for (id, def) in defs {
        let Some(id) = id.as_str() else { continue };
        let calls = if let Some(uses) = def.get("uses").and_then(Value::as_str) {
            Err(format!(
                "job `{id}` calls the reusable workflow `{uses}`, which doctor does not follow"
            ))
        } else {
            Ok(github_steps(def.get("steps")))
        };
        jobs.push(Job {
            id: JobRef {
                system: JobSystem::Github,
                file: path.clone(),
                workflow: workflow.clone(),
                job: id.to_string(),
            },
            filter: filter.clone(),
            upstream: str_list(def.get("needs")),
            after_failure: github_when(def.get("if")).1,
            calls,
        });
    }
    Ok(jobs)
}

fn argo_jobs(files: &[SourceFile], global: &mut Vec<Finding>) -> Result<Vec<Job>, DoctorError> {
    let mut sensors = Vec::new();
    // (name, namespace) → template
    let mut templates: BTreeMap<(String, String), Value> = BTreeMap::new();
    for f in files {
        for doc in yaml_docs(f)? {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            let meta = |k: &str| {
                doc.get("metadata")
                    .and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            match kind {
                "Sensor" => sensors.push((f.path.clone(), doc)),
                "WorkflowTemplate" | "ClusterWorkflowTemplate" => {
                    templates.insert((meta("name"), meta("namespace")), doc.clone());
                }
                _ => {}
            }
        }
    }
    let mut jobs = Vec::new();
    for (path, sensor) in &sensors {
        let name = sensor
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let labelled_step = sensor
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(|l| l.get("konductor.io/step"))
            .and_then(Value::as_str);
        let spec = sensor.get("spec");
        // What the triggers submit.
        let mut calls: Result<LocomotiveCalls, String> =
            Err(format!("sensor `{name}` submits no Argo Workflow"));
        let triggers = spec
            .and_then(|s| s.get("triggers"))
            .and_then(Value::as_sequence);
        for t in triggers.into_iter().flatten() {
            let tmpl = t.get("template");
            let Some(resource) = tmpl
                .and_then(|t| t.get("argoWorkflow").or_else(|| t.get("k8s")))
                .and_then(|w| w.get("source"))
                .and_then(|s| s.get("resource"))
            else {
                continue;
            };
            let mut parts = vec![resource];
            if let Some(ref_name) = resource
                .get("spec")
                .and_then(|s| s.get("workflowTemplateRef"))
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
            {
                let ns = resource
                    .get("metadata")
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let found = templates
                    .get(&(ref_name.to_string(), ns.to_string()))
                    .or_else(|| {
                        templates
                            .iter()
                            .find(|((n, _), _)| n == ref_name)
                            .map(|(_, v)| v)
                    });
                match found {
                    Some(t) => parts.push(t),
                    None => {
                        calls = Err(format!(
                            "sensor `{name}` submits the WorkflowTemplate `{ref_name}`, which is not among the Argo files read"
                        ));
                        continue;
                    }
                }
            }
            let c = argo_calls(&parts);
            match &mut calls {
                Ok(prev) => prev.merge(c),
                Err(_) => calls = Ok(c),
            }
        }
        let deps = spec
            .and_then(|s| s.get("dependencies"))
            .and_then(Value::as_sequence);
        let mut any_ref = false;
        for dep in deps.into_iter().flatten() {
            let dep_name = dep
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)");
            let filters = dep.get("filters");
            let or = filters
                .and_then(|f| f.get("dataLogicalOperator"))
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("or"));
            let mut refs = Vec::new();
            let mut others = 0;
            let data = filters
                .and_then(|f| f.get("data"))
                .and_then(Value::as_sequence);
            for d in data.into_iter().flatten() {
                if d.get("path").and_then(Value::as_str) != Some("body.ref") {
                    others += 1;
                    continue;
                }
                let where_ = format!("sensor `{name}`, dependency `{dep_name}`");
                if d.get("type").and_then(Value::as_str) != Some("string") {
                    return Err(invalid(
                        path,
                        format!("{where_}: the `body.ref` data filter must have `type: string`"),
                    ));
                }
                let negated = match d.get("comparator").and_then(Value::as_str) {
                    None | Some("=") | Some("") => false,
                    Some("!=") => true,
                    Some(c) => {
                        return Err(invalid(
                            path,
                            format!("{where_}: comparator `{c}` does not apply to a string"),
                        ))
                    }
                };
                let values = str_list(d.get("value"));
                refs.push(
                    GoRegexFilter::new(&values, negated)
                        .map_err(|e| bad_filter(path, &where_, e))?,
                );
            }
            if refs.is_empty() {
                continue;
            }
            any_ref = true;
            jobs.push(Job {
                id: JobRef {
                    system: JobSystem::Argo,
                    file: path.clone(),
                    workflow: name.to_string(),
                    job: dep_name.to_string(),
                },
                filter: Some(TagFilter::Argo { refs, others, or }),
                upstream: vec![],
                after_failure: false,
                calls: calls.clone(),
            });
        }
        if !any_ref {
            if let Some(step) = labelled_step {
                global.push(Finding::problem(
                    FindingKind::UnfilteredSensor,
                    None,
                    format!(
                        "`{path}`: sensor `{name}` (step `{step}`) has no data filter on `body.ref`: it fires for every push, state tags included"
                    ),
                    Some(format!(
                        "filter `body.ref` with `^refs/tags/release=[0-9]+\\.[0-9]+={step}\\.[0-9]+$`"
                    )),
                ));
            }
        }
    }
    Ok(jobs)
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
        jobs.extend(circleci_jobs(f, &mut global)?);
    }
    for f in &inputs.github {
        jobs.extend(github_jobs(f)?);
    }
    jobs.extend(argo_jobs(&inputs.argo, &mut global)?);

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
    let matches = |j: &Job, tag: &str| j.filter.as_ref().is_some_and(|f| f.matches(tag));
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
            let missed: Vec<String> = probes
                .iter()
                .filter(|t| !matches(job, t))
                .cloned()
                .collect();
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
            let hits: Vec<String> = forbidden
                .iter()
                .filter(|t| matches(job, t))
                .cloned()
                .collect();
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
                let hits: Vec<String> = tags.into_iter().filter(|t| matches(job, t)).collect();
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
                        in_step
                            .iter()
                            .copied()
                            .filter(|&d| {
                                jobs[d]
                                    .upstream
                                    .iter()
                                    .any(|u| lookup(&jobs[d], u) == Some(j))
                            })
                            .collect()
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
                            && jobs[d]
                                .upstream
                                .iter()
                                .any(|u| lookup(&jobs[d], u) == Some(i))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::filter::{trigger_filter_yaml, CiSystem};

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
        assert!(r.render_text().contains(
            "MISSING b\n        no job runs for its trigger tags, e.g. `release=1.0=b.1`"
        ));
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
        let cfg =
            circleci(&[("a", A), ("b", B)]).replace("      - konductor/locomotive-on-end\n", "");
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
            g[2].contains(
                "runs for the trigger tags of step `done`, which Konductor never triggers"
            ),
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
        let e = check(&inputs(SDD, Some("workflows:\n  a:\n    jobs:\n      - w:\n          filters: {tags: {only: '/(/'}}\n"), &[], &[])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "`config.yml`: workflow `a`, job `w`: invalid regular expression `/(/`"
            ),
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
}
