//! The step graph, `sdd.yaml`: parsing and validation.
//!
//! The file is a map of step name to either a list of dependencies (short form) or a map
//! of settings (long form):
//!
//! ```yaml
//! unit-tests: []
//! deploy:
//!   needs: [unit-tests]
//!   retries: 1
//! complete-verification:
//!   needs: [deploy]
//!   virtual: true
//! ```
//!
//! See `docs/sdd.md` for every key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_yaml::Value;

use crate::model::tag::validate_step_name;

mod nesting;

/// Default time a trigger may wait for its job's `started` before it is re-triggered.
pub const DEFAULT_TRIGGER_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default number of re-triggers of a lost trigger (a trigger no CI picked up).
pub const DEFAULT_TRIGGER_RETRIES: u32 = 3;
/// Longest `timeout` or `trigger_timeout` accepted: 365 days. Every time computation on a
/// duration then stays far from the ends of an `i64` of seconds.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);
/// Deepest nesting of lists and maps accepted. An SDD needs 3 (steps, a step's settings, a
/// list); deeper YAML is refused before it is parsed, in time linear in its size.
pub const MAX_NESTING: usize = 64;
/// Largest `sdd.yaml` accepted, in bytes (1 MiB: about 20,000 steps in the short form).
pub const MAX_SDD_BYTES: usize = 1 << 20;

/// The keys of the long form. Kept in one place so `unknown key` hints stay true.
pub const STEP_KEYS: &[&str] = &[
    "needs",
    "virtual",
    "manual",
    "approvers",
    "if_changed",
    "retries",
    "timeout",
    "trigger_timeout",
    "description",
    "environment",
    "deploy_tag",
    "freeze",
];

/// One step of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Step name (valid in a tag).
    pub name: String,
    /// Steps this one depends on.
    pub needs: Vec<String>,
    /// Never triggered; done when its dependencies are done.
    pub is_virtual: bool,
    /// Never triggered; waits for `konductor unblock`.
    pub manual: bool,
    /// Who may unblock a manual step (empty: anyone).
    pub approvers: Vec<String>,
    /// Globs: the step runs only if a matching file changed since the last train that
    /// reached the same target.
    pub if_changed: Vec<String>,
    /// Automatic retries after a failure.
    pub retries: u32,
    /// Time a started job may run before konductor records it as timed out.
    pub timeout: Option<Duration>,
    /// Time a trigger may wait for `started` before it is re-triggered.
    pub trigger_timeout: Duration,
    /// Free text shown in status and on the board.
    pub description: Option<String>,
    /// The environment this step deploys to: it is that environment's deploy step.
    pub environment: Option<String>,
    /// The moving tag the deploy publishes to (`staging-k8s`).
    pub deploy_tag: Option<String>,
    /// Scheduled freeze windows of an environment's deploy step: no deploy is triggered
    /// inside one (`Fri 16:00 - Mon 08:00 Europe/Berlin`).
    pub freeze: Vec<crate::model::freeze::Window>,
    /// 1-based line of the step's key in the file.
    pub line: usize,
}

impl Step {
    fn new(name: &str, line: usize) -> Self {
        Step {
            name: name.to_string(),
            needs: Vec::new(),
            is_virtual: false,
            manual: false,
            approvers: Vec::new(),
            if_changed: Vec::new(),
            retries: 0,
            timeout: None,
            trigger_timeout: DEFAULT_TRIGGER_TIMEOUT,
            description: None,
            environment: None,
            deploy_tag: None,
            freeze: Vec::new(),
            line,
        }
    }
}

/// A validated step graph.
#[derive(Debug, Clone)]
pub struct Sdd {
    /// Where it was read from (for messages).
    pub source: String,
    steps: Vec<Step>,
    index: BTreeMap<String, usize>,
    graph: DiGraph<usize, ()>,
}

/// One problem found in an SDD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SddIssue {
    /// File name as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

impl fmt::Display for SddIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// All problems found in an SDD file (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SddError {
    /// The problems, in file order.
    pub issues: Vec<SddIssue>,
}

impl fmt::Display for SddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "invalid step graph ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for i in &self.issues {
            write!(f, "\n  {i}")?;
        }
        Ok(())
    }
}

/// Finds the lines of keys in the source text, for messages.
struct Locator<'a> {
    lines: Vec<&'a str>,
    /// top-level key → 0-based line index
    top: BTreeMap<String, usize>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let mut top = BTreeMap::new();
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with([' ', '\t', '#', '-']) || l.trim().is_empty() {
                continue;
            }
            if let Some(key) = top_key(l) {
                top.entry(key).or_insert(i);
            }
        }
        Locator { lines, top }
    }

    /// The line of the second top-level occurrence of `key` (a duplicate).
    fn second(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                !l.starts_with([' ', '\t', '#', '-']) && top_key(l).as_deref() == Some(key)
            })
            .nth(1)
            .map(|(i, _)| i + 1)
    }

    fn step(&self, name: &str) -> Option<usize> {
        self.top.get(name).map(|i| i + 1)
    }

    /// The line of the second `key:` inside the block of top-level key `step`.
    fn second_within(&self, step: &str, key: &str) -> Option<usize> {
        let start = *self.top.get(step)?;
        self.lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .take_while(|(_, l)| l.starts_with([' ', '\t', '-', '#']) || l.trim().is_empty())
            .filter(|(_, l)| top_key(l.trim_start()).as_deref() == Some(key))
            .nth(1)
            .map(|(i, _)| i + 1)
    }

    /// The step whose block holds 1-based `line`: the last top-level key at or above it.
    fn step_at(&self, line: usize) -> Option<&str> {
        self.top
            .iter()
            .filter(|(_, &i)| i < line)
            .max_by_key(|(_, &i)| i)
            .map(|(k, _)| k.as_str())
    }

    /// The line of `word` inside the block of top-level key `step`.
    fn within(&self, step: &str, word: &str) -> Option<usize> {
        let start = *self.top.get(step)?;
        for (i, l) in self.lines.iter().enumerate().skip(start) {
            if i > start && !l.starts_with([' ', '\t', '-', '#']) && !l.trim().is_empty() {
                break;
            }
            let code = l.split(" #").next().unwrap_or(l);
            let found = code.match_indices(word).any(|(at, _)| {
                let before = code[..at].chars().next_back();
                let after = code[at + word.len()..].chars().next();
                let is_word = |c: Option<char>| {
                    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                };
                !is_word(before) && !is_word(after)
            });
            if found {
                return Some(i + 1);
            }
        }
        Some(start + 1)
    }
}

fn top_key(line: &str) -> Option<String> {
    let line = line.trim_end();
    let (key, rest) = if let Some(q) = line.strip_prefix('"') {
        let end = q.find('"')?;
        (&q[..end], &q[end + 1..])
    } else if let Some(q) = line.strip_prefix('\'') {
        let end = q.find('\'')?;
        (&q[..end], &q[end + 1..])
    } else {
        let end = line.find(':')?;
        (&line[..end], &line[end..])
    };
    rest.trim_start()
        .starts_with(':')
        .then(|| key.trim().to_string())
}

impl Sdd {
    /// Parse and validate SDD text. `source` names the file in messages.
    pub fn parse(source: &str, text: &str) -> Result<Sdd, SddError> {
        let issue = |line: Option<usize>, message: String, hint: Option<String>| SddIssue {
            file: source.to_string(),
            line,
            message,
            hint,
        };
        let refuse = |line: Option<usize>, message: String, hint: Option<String>| {
            Err(SddError {
                issues: vec![issue(line, message, hint)],
            })
        };
        if text.len() > MAX_SDD_BYTES {
            return refuse(
                None,
                format!("the file is larger than {MAX_SDD_BYTES} bytes (1 MiB), the most an SDD may have"),
                None,
            );
        }
        // A byte order mark is not content (editors on Windows write one).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if let Some(line) = nesting::too_deep(text, MAX_NESTING) {
            return refuse(
                Some(line),
                format!("lists and maps nest deeper than {MAX_NESTING} levels"),
                Some("an SDD needs 3: steps, a step's settings, and lists of names".into()),
            );
        }
        let loc = Locator::new(text);
        if text.trim().is_empty()
            || text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(SddError {
                issues: vec![issue(
                    None,
                    "the file is empty".into(),
                    Some(
                        "an SDD is a map of step name to dependencies, e.g. `unit-tests: []`"
                            .into(),
                    ),
                )],
            });
        }
        // serde_yaml rejects duplicate keys in a mapping, with the position.
        let doc: Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                let dup = msg
                    .split_once("duplicate entry with key ")
                    .map(|(_, k)| k.trim().trim_matches('"').to_string());
                let line = match &dup {
                    Some(k) => loc.second(k).or(line),
                    None => line,
                };
                // A duplicate inside a step's settings is not a duplicate step: the key is
                // not one of the top-level ones, or its second occurrence is not.
                let in_step = dup.as_deref().and_then(|k| match loc.second(k) {
                    Some(_) => None,
                    None => line.and_then(|l| loc.step_at(l)).map(|s| (k, s)),
                });
                let line = match in_step {
                    Some((k, step)) => loc.second_within(step, k).or(line),
                    None => line,
                };
                let (message, hint) = if let Some((k, step)) = in_step {
                    (
                        format!("duplicate key `{k}` in step `{step}`"),
                        Some("each key may appear once in a step; merge the two".to_string()),
                    )
                } else if msg.contains("duplicate entry") {
                    (
                        msg.replace("duplicate entry with key", "duplicate step"),
                        Some("each step may appear once; merge the two entries".to_string()),
                    )
                } else if msg.contains("recursion limit exceeded") {
                    (
                        format!("lists and maps nest deeper than {MAX_NESTING} levels"),
                        None,
                    )
                } else {
                    (format!("not valid YAML: {msg}"), None)
                };
                return Err(SddError {
                    issues: vec![issue(line, message, hint)],
                });
            }
        };
        let map = match doc {
            Value::Mapping(m) => m,
            Value::Null => {
                return Err(SddError {
                    issues: vec![issue(None, "the file is empty".into(), None)],
                })
            }
            other => {
                return Err(SddError {
                    issues: vec![issue(
                        Some(1),
                        format!(
                            "the top level must be a map of step name to dependencies, not {}",
                            kind(&other)
                        ),
                        Some("write `step: [dependency, ...]` lines".into()),
                    )],
                })
            }
        };
        let mut issues = Vec::new();
        let mut steps: Vec<Step> = Vec::new();
        for (k, v) in map {
            let name = match &k {
                Value::String(s) => s.clone(),
                other => {
                    issues.push(issue(
                        None,
                        format!("step names must be strings, found {}", kind(other)),
                        None,
                    ));
                    continue;
                }
            };
            let line = loc.step(&name);
            if let Err(reason) = validate_step_name(&name) {
                issues.push(issue(line, reason, None));
                continue;
            }
            let mut step = Step::new(&name, line.unwrap_or(0));
            match v {
                Value::Null => {}
                Value::Sequence(seq) => {
                    step.needs =
                        string_list(&seq, &name, "dependencies", line, &mut issues, source);
                }
                Value::Mapping(m) => {
                    parse_long(&mut step, m, &loc, &mut issues, source);
                }
                other => issues.push(issue(
                    line,
                    format!(
                        "step `{name}` must be a list of dependencies or a map of settings, not {}",
                        kind(&other)
                    ),
                    None,
                )),
            }
            steps.push(step);
        }
        // Cross-step checks.
        let names: BTreeSet<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        for s in &steps {
            let mut seen = BTreeSet::new();
            for d in &s.needs {
                let line = loc.within(&s.name, d);
                if !seen.insert(d) {
                    issues.push(issue(
                        line,
                        format!("step `{}` lists dependency `{d}` twice", s.name),
                        None,
                    ));
                } else if d == &s.name {
                    issues.push(issue(
                        line,
                        format!("step `{}` depends on itself", s.name),
                        Some("remove it from its own `needs`".into()),
                    ));
                } else if !names.contains(d.as_str()) {
                    issues.push(issue(
                        line,
                        format!("unknown dependency `{d}` of step `{}`", s.name),
                        nearest(d, names.iter().copied()).map(|n| format!("did you mean `{n}`?")),
                    ));
                }
            }
            if s.manual && s.is_virtual {
                issues.push(issue(
                    loc.within(&s.name, "manual"),
                    format!("step `{}` cannot be both `manual` and `virtual`", s.name),
                    Some("a virtual step is never run, so there is nothing to unblock".into()),
                ));
            }
            if s.deploy_tag.is_some() && s.environment.is_none() {
                issues.push(issue(
                    loc.within(&s.name, "deploy_tag"),
                    format!("step `{}` has `deploy_tag` but no `environment`", s.name),
                    Some("a deploy tag belongs to an environment: add `environment: NAME`".into()),
                ));
            }
            if !s.freeze.is_empty() && s.environment.is_none() {
                issues.push(issue(
                    loc.within(&s.name, "freeze"),
                    format!(
                        "step `{}` has `freeze` windows but no `environment`",
                        s.name
                    ),
                    Some(
                        "freeze windows hold an environment's deploys: put them on its deploy step"
                            .into(),
                    ),
                ));
            }
            if s.environment.is_some() && (s.manual || s.is_virtual) {
                issues.push(issue(
                    loc.within(&s.name, "environment"),
                    format!(
                        "step `{}` has `environment` but is `{}`",
                        s.name,
                        if s.manual { "manual" } else { "virtual" }
                    ),
                    Some("an environment's deploy step is a job; put `environment` on the step that deploys".into()),
                ));
            }
            if !s.approvers.is_empty() && !s.manual {
                issues.push(issue(
                    loc.within(&s.name, "approvers"),
                    format!("step `{}` has `approvers` but is not `manual`", s.name),
                    Some("add `manual: true`, or remove `approvers`".into()),
                ));
            }
        }
        let mut envs: BTreeMap<&str, &str> = BTreeMap::new();
        let mut tags: BTreeMap<&str, &str> = BTreeMap::new();
        for s in &steps {
            if let Some(e) = &s.environment {
                if let Some(first) = envs.insert(e, &s.name) {
                    envs.insert(e, first);
                    issues.push(issue(
                        loc.within(&s.name, "environment"),
                        format!(
                            "steps `{first}` and `{}` both deploy to environment `{e}`",
                            s.name
                        ),
                        Some("an environment has one deploy step; verification steps need it instead of naming the environment".into()),
                    ));
                }
            }
            if let Some(t) = &s.deploy_tag {
                if let Some(first) = tags.insert(t, &s.name) {
                    tags.insert(t, first);
                    issues.push(issue(
                        loc.within(&s.name, "deploy_tag"),
                        format!(
                            "steps `{first}` and `{}` both publish to deploy tag `{t}`",
                            s.name
                        ),
                        Some("each environment needs its own deploy tag".into()),
                    ));
                }
            }
        }
        if issues.is_empty() {
            if let Some(cycle) = find_cycle(&steps) {
                let first = &cycle[0];
                issues.push(issue(
                    loc.within(first, &cycle[1]),
                    format!("dependency cycle: {}", cycle.join(" → ")),
                    Some("a step graph must be acyclic; remove one of these dependencies".into()),
                ));
            }
        }
        if !issues.is_empty() {
            issues.sort_by_key(|i| i.line.unwrap_or(0));
            return Err(SddError { issues });
        }
        let index: BTreeMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        for (i, s) in steps.iter().enumerate() {
            for d in &s.needs {
                // edge: dependency → dependent
                graph.add_edge(nodes[index[d]], nodes[i], ());
            }
        }
        Ok(Sdd {
            source: source.to_string(),
            steps,
            index,
            graph,
        })
    }

    /// Every step, in file order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// One step by name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.index.get(name).map(|&i| &self.steps[i])
    }

    /// The steps that depend directly on `name`.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        let Some(&i) = self.index.get(name) else {
            return vec![];
        };
        let mut out: Vec<&str> = self
            .graph
            .neighbors(NodeIndex::new(i))
            .map(|n| self.steps[self.graph[n]].name.as_str())
            .collect();
        out.sort_by_key(|n| self.index[*n]);
        out
    }

    /// The environments' deploy steps, in file order: (environment, step).
    pub fn environments(&self) -> Vec<(&str, &Step)> {
        self.steps
            .iter()
            .filter_map(|s| s.environment.as_deref().map(|e| (e, s)))
            .collect()
    }

    /// Whether `step` depends on `on`, directly or not (a step does not depend on itself).
    pub fn depends_on(&self, step: &str, on: &str) -> bool {
        let mut stack = vec![step];
        let mut seen = BTreeSet::new();
        while let Some(s) = stack.pop() {
            for d in self.step(s).map(|s| s.needs.as_slice()).unwrap_or(&[]) {
                if d == on {
                    return true;
                }
                if seen.insert(d.as_str()) {
                    stack.push(d);
                }
            }
        }
        false
    }

    /// Steps with no dependencies.
    pub fn leaves(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.needs.is_empty())
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Steps nothing depends on.
    pub fn sinks(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| self.dependents(&s.name).is_empty())
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Targets: the virtual steps, plus any sink that is not virtual.
    pub fn targets(&self) -> Vec<&str> {
        let sinks = self.sinks();
        self.steps
            .iter()
            .filter(|s| s.is_virtual || sinks.contains(&s.name.as_str()))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// The final target: the one step nothing depends on.
    pub fn default_target(&self) -> Result<&str, String> {
        match self.sinks().as_slice() {
            [one] => Ok(one),
            many => Err(format!(
                "the graph has {} final steps ({}); choose one with `--target`",
                many.len(),
                many.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Check that `target` names a step, with a hint if not.
    pub fn check_target(&self, target: &str) -> Result<(), String> {
        if self.index.contains_key(target) {
            return Ok(());
        }
        let hint = nearest(target, self.index.keys().map(String::as_str))
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        Err(format!(
            "unknown target `{target}` in {}{hint}",
            self.source
        ))
    }

    /// `target` and every step it needs, directly or not, in topological (file-stable) order.
    pub fn closure(&self, target: &str) -> Vec<&Step> {
        let mut keep = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(s) = stack.pop() {
            if keep.insert(s) {
                if let Some(st) = self.step(s) {
                    stack.extend(st.needs.iter().map(String::as_str));
                }
            }
        }
        self.topo_order()
            .into_iter()
            .filter(|s| keep.contains(s.name.as_str()))
            .collect()
    }

    /// All steps in a topological order, ties broken by file order.
    pub fn topo_order(&self) -> Vec<&Step> {
        let mut indeg: Vec<usize> = self.steps.iter().map(|s| s.needs.len()).collect();
        let mut ready: BTreeSet<usize> = (0..self.steps.len()).filter(|&i| indeg[i] == 0).collect();
        let mut out = Vec::with_capacity(self.steps.len());
        while let Some(i) = ready.pop_first() {
            out.push(&self.steps[i]);
            for n in self.graph.neighbors(NodeIndex::new(i)) {
                let j = self.graph[n];
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        out
    }

    /// The longest chain of runnable (non-virtual, non-manual) steps that `target` needs,
    /// from a leaf to the target. Ties go to the file-order-first chain.
    pub fn critical_path(&self, target: &str) -> Vec<String> {
        let mut best: BTreeMap<&str, (usize, Option<&str>)> = BTreeMap::new();
        for s in self.closure(target) {
            let w = usize::from(self.runs(&s.name, target));
            let (len, prev) = s.needs.iter().fold((0, None), |acc, d| {
                let l = best[d.as_str()].0;
                if acc.1.is_none() || l > acc.0 {
                    (l, Some(d.as_str()))
                } else {
                    acc
                }
            });
            best.insert(&s.name, (len + w, prev));
        }
        let mut path = Vec::new();
        let mut cur = Some(target);
        while let Some(c) = cur {
            path.push(c.to_string());
            cur = best.get(c).and_then(|b| b.1);
        }
        path.reverse();
        path
    }

    /// Depth of `target`: the number of runnable steps on its critical path.
    pub fn depth(&self, target: &str) -> usize {
        self.critical_path(target)
            .iter()
            .filter(|s| self.runs(s, target))
            .count()
    }

    /// Whether a step is ever triggered as a job when aiming at `target`.
    pub fn runs(&self, step: &str, target: &str) -> bool {
        self.step(step)
            .is_some_and(|s| !s.is_virtual && !s.manual && s.name != target)
    }
}

fn parse_long(
    step: &mut Step,
    m: serde_yaml::Mapping,
    loc: &Locator<'_>,
    issues: &mut Vec<SddIssue>,
    source: &str,
) {
    let name = step.name.clone();
    let push = |issues: &mut Vec<SddIssue>, key: &str, message: String, hint: Option<String>| {
        issues.push(SddIssue {
            file: source.to_string(),
            line: loc.within(&name, key),
            message,
            hint,
        })
    };
    for (k, v) in m {
        let Value::String(key) = k else {
            push(
                issues,
                &name,
                format!("step `{name}` has a non-string key"),
                None,
            );
            continue;
        };
        match key.as_str() {
            "needs" => match v {
                Value::Sequence(seq) => {
                    step.needs = string_list(&seq, &name, "needs", loc.step(&name), issues, source);
                }
                Value::Null => {}
                other => push(
                    issues,
                    "needs",
                    format!(
                        "`needs` of step `{name}` must be a list, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            "virtual" | "manual" => match v {
                Value::Bool(b) => {
                    if key == "virtual" {
                        step.is_virtual = b
                    } else {
                        step.manual = b
                    }
                }
                other => push(
                    issues,
                    &key,
                    format!(
                        "`{key}` of step `{name}` must be `true` or `false`, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            "approvers" => match v {
                Value::Sequence(seq) => {
                    step.approvers =
                        string_list(&seq, &name, "approvers", loc.step(&name), issues, source)
                }
                other => push(
                    issues,
                    "approvers",
                    format!(
                        "`approvers` of step `{name}` must be a list, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            "if_changed" => match v {
                Value::Sequence(seq) => {
                    let globs =
                        string_list(&seq, &name, "if_changed", loc.step(&name), issues, source);
                    for g in &globs {
                        if let Err(e) = crate::model::changes::compile_glob(g) {
                            push(
                                issues,
                                g,
                                format!("invalid glob `{g}` in `if_changed` of step `{name}`: {e}"),
                                None,
                            );
                        }
                    }
                    if globs.is_empty() {
                        push(
                            issues,
                            "if_changed",
                            format!("`if_changed` of step `{name}` is empty"),
                            Some("list at least one glob, or remove the key".into()),
                        );
                    }
                    step.if_changed = globs;
                }
                other => push(
                    issues,
                    "if_changed",
                    format!(
                        "`if_changed` of step `{name}` must be a list of globs, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            "retries" => match v.as_u64() {
                Some(n) if n <= 20 => step.retries = n as u32,
                _ => push(
                    issues,
                    "retries",
                    format!(
                        "`retries` of step `{name}` must be a whole number from 0 to 20, not {}",
                        show(&v)
                    ),
                    None,
                ),
            },
            "timeout" | "trigger_timeout" => {
                match v
                    .as_str()
                    .ok_or_else(|| DurationError::Malformed("not a string".to_string()))
                    .and_then(parse_duration_checked)
                {
                    Ok(d) => {
                        if key == "timeout" {
                            step.timeout = Some(d)
                        } else {
                            step.trigger_timeout = d
                        }
                    }
                    Err(DurationError::TooLong) => push(
                        issues,
                        &key,
                        format!(
                            "`{key}` of step `{name}` is {}, longer than the longest allowed ({})",
                            show(&v),
                            format_duration(MAX_DURATION)
                        ),
                        Some(format!(
                            "a duration may be at most {} days",
                            MAX_DURATION.as_secs() / 86_400
                        )),
                    ),
                    Err(DurationError::Malformed(e)) => push(
                        issues,
                        &key,
                        format!(
                            "malformed duration {} for `{key}` of step `{name}`: {e}",
                            show(&v)
                        ),
                        Some("write a duration like `90s`, `30m`, `1h30m` or `2d`".into()),
                    ),
                }
            }
            "environment" => match v {
                Value::String(s) => {
                    if let Some(why) = crate::model::env::env_name_problem(&s) {
                        push(
                            issues,
                            "environment",
                            format!(
                                "`environment` of step `{name}` is `{}`, which cannot be an environment name: {why}",
                                s.escape_debug()
                            ),
                            Some("environment names are 1 to 32 letters, digits, `-` or `_`, like `staging`".into()),
                        );
                    }
                    step.environment = Some(s);
                }
                other => push(
                    issues,
                    "environment",
                    format!(
                        "`environment` of step `{name}` must be a name, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            "deploy_tag" => match v {
                Value::String(s) => {
                    if let Some(why) = crate::model::env::deploy_tag_problem(&s) {
                        push(
                            issues,
                            "deploy_tag",
                            format!(
                                "`deploy_tag` of step `{name}` is `{}`, which cannot be a deploy tag: {why}",
                                s.escape_debug()
                            ),
                            Some("use a valid tag name outside `release=` and `env=`, like `staging-k8s`".into()),
                        );
                    }
                    step.deploy_tag = Some(s);
                }
                other => push(
                    issues,
                    "deploy_tag",
                    format!(
                        "`deploy_tag` of step `{name}` must be a tag name, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            "freeze" => {
                let items = match v {
                    Value::Sequence(items) => items,
                    one @ Value::String(_) => vec![one],
                    other => {
                        push(
                            issues,
                            "freeze",
                            format!(
                                "`freeze` of step `{name}` must be a list of windows, not {}",
                                kind(&other)
                            ),
                            Some(
                                "write `freeze: [\"Fri 16:00 - Mon 08:00 Europe/Berlin\"]`".into(),
                            ),
                        );
                        vec![]
                    }
                };
                for item in items {
                    match item {
                        Value::String(w) => match crate::model::freeze::Window::parse(&w) {
                            Ok(w) => step.freeze.push(w),
                            Err(why) => push(
                                issues,
                                "freeze",
                                format!(
                                    "malformed freeze window `{}` of step `{name}`: {why}",
                                    w.escape_debug()
                                ),
                                Some("write a window like `Fri 16:00 - Mon 08:00 Europe/Berlin`, or `22:00 - 06:00 UTC` for every day".into()),
                            ),
                        },
                        other => push(
                            issues,
                            "freeze",
                            format!(
                                "a freeze window of step `{name}` must be text, not {}",
                                kind(&other)
                            ),
                            None,
                        ),
                    }
                }
            }
            "description" => match v {
                Value::String(s) => step.description = Some(s),
                other => push(
                    issues,
                    "description",
                    format!(
                        "`description` of step `{name}` must be text, not {}",
                        kind(&other)
                    ),
                    None,
                ),
            },
            other => push(
                issues,
                other,
                format!("unknown key `{other}` in step `{name}`"),
                Some(match nearest(other, STEP_KEYS.iter().copied()) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!("known keys: {}", STEP_KEYS.join(", ")),
                }),
            ),
        }
    }
}

fn string_list(
    seq: &[Value],
    step: &str,
    what: &str,
    line: Option<usize>,
    issues: &mut Vec<SddIssue>,
    source: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for v in seq {
        match v {
            Value::String(s) => out.push(s.clone()),
            other => issues.push(SddIssue {
                file: source.to_string(),
                line,
                message: format!(
                    "{what} of step `{step}` must be names, found {} {}",
                    kind(other),
                    show(other)
                ),
                hint: None,
            }),
        }
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

fn show(v: &Value) -> String {
    let s = serde_yaml::to_string(v).unwrap_or_default();
    format!("`{}`", s.trim())
}

/// Read an SDD file: at most one byte more than [`MAX_SDD_BYTES`], so that
/// [`Sdd::parse`] can refuse a larger one without this reading all of it (`/dev/zero`
/// included).
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(
            u64::try_from(MAX_SDD_BYTES)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        )
        .read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DurationError {
    /// Not a duration.
    Malformed(String),
    /// Longer than [`MAX_DURATION`] (however large its numbers).
    TooLong,
}

/// Parse a duration like `90s`, `30m`, `1h30m`, `2d`, of at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_checked(s).map_err(|e| match e {
        DurationError::Malformed(m) => m,
        DurationError::TooLong => format!(
            "`{}` is longer than the longest allowed ({})",
            s.trim(),
            format_duration(MAX_DURATION)
        ),
    })
}

fn parse_duration_checked(s: &str) -> Result<Duration, DurationError> {
    let bad = |m: String| Err(DurationError::Malformed(m));
    let s = s.trim();
    if s.is_empty() {
        return bad("empty".into());
    }
    let max = MAX_DURATION.as_secs();
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return bad(format!("unknown unit `{c}`")),
        };
        if num.is_empty() {
            return bad(format!("missing number before `{c}`"));
        }
        // Digits beyond a u64 are simply too long, like any other sum past the maximum.
        let n: u64 = num.parse().unwrap_or(u64::MAX);
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .filter(|&t| t <= max)
            .ok_or(DurationError::TooLong)?;
        num.clear();
    }
    if !num.is_empty() {
        return bad(format!("`{num}` has no unit (s, m, h or d)"));
    }
    if total == 0 {
        return bad("a duration must be longer than zero".into());
    }
    Ok(Duration::from_secs(total))
}

/// Format a duration compactly: `1h30m`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push_str(&format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out
}

/// The closest candidate by edit distance, if close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (word.len().max(c.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A cycle as a path `a → b → … → a`, if any.
fn find_cycle(steps: &[Step]) -> Option<Vec<String>> {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut color = vec![0u8; steps.len()];
    let mut stack: Vec<usize> = Vec::new();
    fn dfs(
        i: usize,
        steps: &[Step],
        index: &BTreeMap<&str, usize>,
        color: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        color[i] = 1;
        stack.push(i);
        for d in &steps[i].needs {
            let Some(&j) = index.get(d.as_str()) else {
                continue;
            };
            if color[j] == 1 {
                let at = stack.iter().position(|&k| k == j).unwrap_or(0);
                let mut cyc: Vec<String> =
                    stack[at..].iter().map(|&k| steps[k].name.clone()).collect();
                cyc.push(steps[j].name.clone());
                return Some(cyc);
            }
            if color[j] == 0 {
                if let Some(c) = dfs(j, steps, index, color, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        color[i] = 2;
        None
    }
    for i in 0..steps.len() {
        if color[i] == 0 {
            if let Some(c) = dfs(i, steps, &index, &mut color, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Sdd::parse("sdd.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn seed_form_parses() {
        let sdd = Sdd::parse(
            "sdd.yaml",
            "unit-tests: []  # no dependencies\ncomplete-verification:\n - unit-tests\n",
        )
        .unwrap();
        assert_eq!(sdd.leaves(), vec!["unit-tests"]);
        assert_eq!(sdd.default_target().unwrap(), "complete-verification");
        assert_eq!(sdd.depth("complete-verification"), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("unit-tests: []\ndeploy:\n  - unit-test\n");
        assert!(e.contains("sdd.yaml:3: unknown dependency `unit-test` of step `deploy`; did you mean `unit-tests`?"), "{e}");
        let e = err("a: [b]\nb: [c]\nc: [a]\n");
        assert!(e.contains("dependency cycle: a → b → c → a"), "{e}");
        let e = err("a: [a]\n");
        assert!(e.contains("sdd.yaml:1: step `a` depends on itself"), "{e}");
        let e = err("a: []\nb: []\na: [b]\n");
        assert!(e.contains("duplicate step"), "{e}");
        assert!(e.contains("sdd.yaml:3"), "{e}");
        let e = err("a: {needs: [], retrys: 2}\n");
        assert!(
            e.contains("unknown key `retrys` in step `a`; did you mean `retries`?"),
            "{e}"
        );
    }

    fn cases(kind: &str) -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/sdd")
            .join(kind);
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no cases in {}", dir.display());
        out
    }

    #[test]
    fn valid_cases_parse() {
        for (name, text) in cases("valid") {
            let sdd = Sdd::parse(&name, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!sdd.steps().is_empty(), "{name}");
        }
    }

    /// Each file in tests/sdd/invalid starts with `# expect: <text>`; the error must contain it.
    #[test]
    fn invalid_cases_fail_with_their_message_and_line() {
        let mut failures = Vec::new();
        for (name, text) in cases("invalid") {
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{name}: first line must be `# expect: ...`"));
            let err = Sdd::parse("t.yaml", &text)
                .map(|_| ())
                .expect_err(&name)
                .to_string();
            if !err.contains(expect) {
                failures.push(format!("{name}:\n  expected: {expect}\n  got: {err}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        for bad in ["", "10", "m", "5x", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_in_well_under_a_second() {
        // 200 KB of nested brackets, depth 100,000: took 51 s to refuse (issue 12).
        for text in [
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("a: {}\n", "{x: ".repeat(50_000)),
            format!("a:\n  {}x\n", "- ".repeat(100_000)),
        ] {
            let t0 = std::time::Instant::now();
            let e = err(&text);
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(1),
                "{:?}",
                t0.elapsed()
            );
            assert!(e.contains("nest deeper than 64 levels"), "{e}");
            assert!(e.contains("sdd.yaml:"), "names the line: {e}");
        }
        // At the limit it is not a nesting problem.
        let at_limit = format!("a: {}{}\n", "[".repeat(63), "]".repeat(63));
        assert!(!err(&at_limit).contains("nest deeper"));
    }

    #[test]
    fn a_file_past_the_size_limit_is_refused() {
        let text = format!("a: []\n#{}\n", "x".repeat(MAX_SDD_BYTES));
        assert!(err(&text).contains("larger than 1048576 bytes (1 MiB)"));
    }

    #[test]
    fn a_byte_order_mark_is_not_a_second_document() {
        let sdd = Sdd::parse("s", "\u{feff}a: []\nb: [a]\n").unwrap();
        assert_eq!(sdd.leaves(), vec!["a"]);
        assert_eq!(sdd.step("a").unwrap().line, 1);
    }

    #[test]
    fn a_duplicate_key_inside_a_step_names_the_key_and_the_step() {
        let e = err("x: []\na:\n  needs: [x]\n  retries: 1\n  needs: []\n");
        assert!(
            e.contains("sdd.yaml:5: duplicate key `needs` in step `a`"),
            "{e}"
        );
        // A duplicate step is still a duplicate step.
        assert!(err("a: []\na: []\n").contains("duplicate step \"a\""));
    }

    #[test]
    fn durations_past_the_maximum_say_too_long_not_malformed() {
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
        assert_eq!(parse_duration("8760h").unwrap(), MAX_DURATION);
        for big in [
            "365d1s",
            "366d",
            "9223372036854775808s",
            "99999999999999999999d",
            "18446744073709551615s",
            "18446744073709551616s",
            "1d99999999999999999999999999s",
        ] {
            let e = parse_duration(big).unwrap_err();
            assert!(
                e.contains("longer than the longest allowed (365d)"),
                "{big}: {e}"
            );
            let e = err(&format!("a:\n  timeout: {big}\n"));
            assert!(
                e.contains("`timeout` of step `a` is")
                    && e.contains("longer than the longest allowed (365d)"),
                "{e}"
            );
        }
        assert!(parse_duration("d").unwrap_err().contains("missing number"));
    }

    #[test]
    fn critical_path_skips_virtual() {
        let sdd = Sdd::parse(
            "s",
            "a: []\nb: []\nc: [a]\nv: {needs: [c, b], virtual: true}\nd: [v]\nt: {needs: [d], virtual: true}\n",
        )
        .unwrap();
        assert_eq!(sdd.critical_path("t"), vec!["a", "c", "v", "d", "t"]);
        assert_eq!(sdd.depth("t"), 3);
        assert_eq!(sdd.targets(), vec!["v", "t"]);
    }
}
