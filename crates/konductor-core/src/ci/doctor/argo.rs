//! Argo Events: the dependencies of each Sensor, their `body.ref` data filters, and the
//! `locomotive` reports of the Workflows (and WorkflowTemplates) its triggers submit.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::shared::{at, str_at, str_list, yaml_docs};
use super::{bad_filter, invalid, DoctorError, Finding, FindingKind, Job, JobRef, JobSystem};
use super::{LocomotiveCalls, SourceFile, TagFilter};
use crate::ci::filter::GoRegexFilter;

/// Whether a file declares one of the Argo kinds doctor reads.
pub(super) fn mentions_argo_kind(text: &str) -> bool {
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

pub(super) fn jobs(
    files: &[SourceFile],
    global: &mut Vec<Finding>,
) -> Result<Vec<Job>, DoctorError> {
    let mut sensors = Vec::new();
    // (name, namespace) → template
    let mut templates: BTreeMap<(String, String), Value> = BTreeMap::new();
    for f in files {
        for doc in yaml_docs(f)? {
            let kind = str_at(&doc, &["kind"]).unwrap_or("");
            let meta = |k: &str| str_at(&doc, &["metadata", k]).unwrap_or("").to_string();
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
        let name = str_at(sensor, &["metadata", "name"]).unwrap_or("(unnamed)");
        let labelled_step = str_at(sensor, &["metadata", "labels", "konductor.io/step"]);
        // What the triggers submit.
        let mut calls: Result<LocomotiveCalls, String> =
            Err(format!("sensor `{name}` submits no Argo Workflow"));
        let triggers = at(sensor, &["spec", "triggers"]).and_then(Value::as_sequence);
        for t in triggers.into_iter().flatten() {
            let Some(resource) = at(t, &["template", "argoWorkflow"])
                .or_else(|| at(t, &["template", "k8s"]))
                .and_then(|w| at(w, &["source", "resource"]))
            else {
                continue;
            };
            let mut parts = vec![resource];
            if let Some(ref_name) = str_at(resource, &["spec", "workflowTemplateRef", "name"]) {
                let ns = str_at(resource, &["metadata", "namespace"]).unwrap_or("");
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
        let deps = at(sensor, &["spec", "dependencies"]).and_then(Value::as_sequence);
        let mut any_ref = false;
        for dep in deps.into_iter().flatten() {
            let dep_name = str_at(dep, &["name"]).unwrap_or("(unnamed)");
            let or = str_at(dep, &["filters", "dataLogicalOperator"])
                .is_some_and(|s| s.eq_ignore_ascii_case("or"));
            let mut refs = Vec::new();
            let mut others = 0;
            let data = at(dep, &["filters", "data"]).and_then(Value::as_sequence);
            for d in data.into_iter().flatten() {
                if str_at(d, &["path"]) != Some("body.ref") {
                    others += 1;
                    continue;
                }
                let where_ = format!("sensor `{name}`, dependency `{dep_name}`");
                if str_at(d, &["type"]) != Some("string") {
                    return Err(invalid(
                        path,
                        format!("{where_}: the `body.ref` data filter must have `type: string`"),
                    ));
                }
                let negated = match str_at(d, &["comparator"]) {
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
