//! GitHub Actions: the jobs of a workflow, the workflow's `on.push` tag filters, `needs`
//! and `if:`, and the `locomotive` reports of their steps (the Konductor action, or
//! scripts).

use std::path::Path;

use serde_yaml::Value;

use super::shared::{env_values, script_calls, str_list, yaml_docs};
use super::{bad_filter, invalid, DoctorError, Job, JobRef, JobSystem, LocomotiveCalls};
use super::{SourceFile, TagFilter};
use crate::ci::filter::GithubRefFilter;

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

pub(super) fn jobs(file: &SourceFile) -> Result<Vec<Job>, DoctorError> {
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
