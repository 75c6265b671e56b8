//! What the readers of every CI system share: YAML documents and lists, and the
//! `locomotive` reports a shell script makes.

use serde::Deserialize as _;
use serde_yaml::Value;

use super::{DoctorError, LocomotiveCalls, SourceFile};

pub(super) fn yaml_docs(file: &SourceFile) -> Result<Vec<Value>, DoctorError> {
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

/// The states a script reports, if it runs `set-step-state` (the `locomotive` subcommand,
/// or the orb's `set-step-state.sh`). A state given as a variable is looked up in the
/// step's environment; if it is not there, the script is taken to report the outcome.
pub(super) fn script_calls(script: &str, env: &[String]) -> LocomotiveCalls {
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

pub(super) fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

pub(super) fn env_values(v: Option<&Value>) -> Vec<String> {
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

/// The value at `path` below `v`, one map key per element.
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The text at `path` below `v`, if it is text.
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}
