//! CircleCI: the jobs of a config's workflows, their tag filters and `requires`, and the
//! `locomotive` reports of their steps, followed through local commands and inline orbs
//! (the Konductor orb's commands are known by name).

use serde_yaml::{Mapping, Value};

use super::shared::{env_values, script_calls, str_list, yaml_docs};
use super::{bad_filter, invalid, DoctorError, Finding, FindingKind, Job, JobRef, JobSystem};
use super::{LocomotiveCalls, SourceFile, TagFilter};
use crate::ci::filter::CircleciFilter;

/// CircleCI: the config's local commands and orbs, to follow named steps.
struct CircleciCtx<'a> {
    commands: Option<&'a Mapping>,
    orbs: Option<&'a Mapping>,
}

impl<'a> CircleciCtx<'a> {
    /// A command or job (`section`) of the inline orb `alias`.
    fn orb_item(&self, alias: &str, section: &str, name: &str) -> Option<&'a Value> {
        self.orbs?.get(alias)?.get(section)?.get(name)
    }

    /// The context inside the inline orb `alias`: its own commands, no orbs.
    fn orb(&self, alias: &str) -> CircleciCtx<'a> {
        CircleciCtx {
            commands: self
                .orbs
                .and_then(|o| o.get(alias))
                .and_then(|o| o.get("commands"))
                .and_then(Value::as_mapping),
            orbs: None,
        }
    }

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
            if let Some(def) = self.orb_item(alias, "commands", cmd) {
                return self.orb(alias).steps(def.get("steps"), depth + 1);
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

pub(super) fn jobs(file: &SourceFile, notes: &mut Vec<Finding>) -> Result<Vec<Job>, DoctorError> {
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
                    match ctx.orb_item(alias, "jobs", job) {
                        Some(def) => Ok(ctx.orb(alias).steps(def.get("steps"), 0)),
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
