//! Text rendering of status reports: aligned tables, colors when wanted.

use std::io::IsTerminal as _;

use konductor_core::plan::{StepState, TrainState};
use konductor_core::report::{unblock_command, Placement, TrainReport};
use konductor_core::sdd::format_duration;
use konductor_core::time::age;

/// Colors only on a terminal, and never with `NO_COLOR` set.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(s: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn step_color(s: StepState) -> &'static str {
    match s {
        StepState::Success => "32",
        StepState::Failure => "31",
        StepState::Blocked => "33",
        StepState::Started | StepState::Triggered => "36",
        StepState::Skipped | StepState::Superseded => "2",
        StepState::Waiting | StepState::Frozen => "35",
        StepState::Pending => "0",
    }
}

fn train_color(s: TrainState) -> &'static str {
    match s {
        TrainState::Succeeded => "32",
        TrainState::Failed => "31",
        TrainState::Blocked => "33",
        TrainState::Running => "36",
        TrainState::Cancelled | TrainState::Superseded => "2",
    }
}

/// Columns padded to their widest cell; the last column is not padded.
fn table(rows: &[Vec<String>], colors: &[Option<&str>], color: bool) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (ri, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let pad = if i + 1 == r.len() {
                0
            } else {
                widths[i] - c.chars().count() + 2
            };
            let cell = match (i, colors.get(ri).copied().flatten()) {
                (1, Some(code)) if ri > 0 => paint(c, code, color),
                _ => c.clone(),
            };
            line.push_str(&cell);
            line.push_str(&" ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// One train: a header and a table of its steps.
pub fn train_table(r: &TrainReport, now: i64, color: bool) -> String {
    let mut out = format!(
        "train {}  {}  commit {}  target {}  opened {} by {}\n",
        r.train,
        paint(r.state.as_str(), train_color(r.state), color),
        &r.sha[..r.sha.len().min(10)],
        r.target,
        r.opened_at,
        r.opened_by
    );
    if r.archived {
        out.push_str(
            "archived: read from refs/konductor/archive (its tags were collected by `gc`)\n",
        );
    }
    if let Some(by) = &r.cancelled_by {
        out.push_str(&format!(
            "cancelled by {by}: {}\n",
            r.cancel_reason.as_deref().unwrap_or("")
        ));
    }
    let mut rows = vec![vec![
        "STEP".to_string(),
        "STATE".into(),
        "ATTEMPT".into(),
        "STARTED".into(),
        "DURATION".into(),
        "DETAIL".into(),
    ]];
    let mut colors = vec![None];
    for s in &r.steps {
        let detail = [
            s.job_url.clone(),
            s.reason.clone(),
            s.unblocked_by
                .as_ref()
                .filter(|_| {
                    !s.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("unblocked by"))
                })
                .map(|b| format!("by {b}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("  ");
        let started = s
            .started_at
            .as_deref()
            .or(s.triggered_at.as_deref())
            .map(|t| t.replace('T', " ").trim_end_matches('Z').to_string())
            .unwrap_or_default();
        rows.push(vec![
            s.name.clone(),
            s.state.as_str().to_string(),
            match s
                .attempts
                .iter()
                .find(|a| a.attempt == s.attempt)
                .and_then(|a| a.rerun)
            {
                _ if s.attempt == 0 => "-".into(),
                Some(k) => format!("{}, re-run {k}", s.attempt),
                None => s.attempt.to_string(),
            },
            started,
            s.duration_secs
                .map(|d| format_duration(std::time::Duration::from_secs(d.max(0) as u64)))
                .unwrap_or_default(),
            detail,
        ]);
        colors.push(Some(step_color(s.state)));
    }
    out.push_str(&table(&rows, &colors, color));
    // As the board's "waiting for someone": each gate a person has to unblock, with the
    // command that does it.
    for g in r.waiting_gates() {
        out.push_str(&format!(
            "\nwaiting for someone: gate `{}`\n  to unblock: {}",
            g.name,
            unblock_command(&r.train, &g.name)
        ));
    }
    for w in &r.warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    let _ = now;
    out
}

/// Many trains: one line each, plus where the environments are: from `envs` (the deploy
/// tags, `konductor env`) when the graphs have environments, else from how far the
/// trains got.
pub fn train_list(
    reports: &[TrainReport],
    envs: &[konductor_core::ops::env_control::EnvView],
    now: i64,
    color: bool,
) -> String {
    if reports.is_empty() {
        return "no trains".into();
    }
    let mut out = String::new();
    let short = |r: &TrainReport| format!("train {} ({})", r.train, &r.sha[..10.min(r.sha.len())]);
    if envs.is_empty() {
        let staging = reports.iter().find(|r| r.placement != Placement::None);
        let prod = reports
            .iter()
            .find(|r| r.placement == Placement::Production);
        out.push_str(&format!(
            "production: {}   staging: {}\n",
            prod.map_or("-".to_string(), short),
            staging.map_or("-".to_string(), short)
        ));
    } else {
        let line: Vec<String> = envs
            .iter()
            .map(|e| {
                let there = match &e.current {
                    Some(c) => {
                        let sha = reports
                            .iter()
                            .find(|r| r.train == c.train)
                            .map(|r| format!(" ({})", &r.sha[..10.min(r.sha.len())]))
                            .unwrap_or_default();
                        let rb = if c.rollback { ", rolled back" } else { "" };
                        format!("train {}{sha}{rb}", c.train)
                    }
                    None => "-".to_string(),
                };
                format!("{}: {there}", e.environment)
            })
            .collect();
        out.push_str(&line.join("   "));
        out.push('\n');
    }
    let mut rows = vec![vec![
        "TRAIN".to_string(),
        "STATE".into(),
        "WHERE".into(),
        "COMMIT".into(),
        "AGE".into(),
        "PROGRESS".into(),
        "WARNINGS".into(),
    ]];
    let mut colors = vec![None];
    for r in reports {
        let done = r.steps.iter().filter(|s| s.state.is_done()).count();
        let opened = konductor_core::time::parse_rfc3339(&r.opened_at).unwrap_or(now);
        let here: Vec<&str> = envs
            .iter()
            .filter(|e| e.current.as_ref().is_some_and(|c| c.train == r.train))
            .map(|e| e.environment.as_str())
            .collect();
        let place = match (r.state, r.placement) {
            (TrainState::Cancelled, _) => "cancelled".to_string(),
            (TrainState::Failed, _) => "failed".to_string(),
            (TrainState::Superseded, _) => "superseded".to_string(),
            _ if !here.is_empty() => format!("on {}", here.join(", ")),
            _ if !envs.is_empty() => "-".to_string(),
            (_, Placement::Production) => "on production".to_string(),
            (_, Placement::Staging) => "on staging".to_string(),
            (_, Placement::None) => "running".to_string(),
        };
        rows.push(vec![
            r.train.clone(),
            r.state.as_str().to_string(),
            place,
            r.sha[..10.min(r.sha.len())].to_string(),
            age(now - opened),
            format!("{done}/{} steps", r.steps.len()),
            if r.warnings.is_empty() {
                String::new()
            } else {
                format!("{} ignored tags", r.warnings.len())
            },
        ]);
        colors.push(Some(train_color(r.state)));
    }
    out.push_str(&table(&rows, &colors, color));
    // Deploys held by a freeze or a pin, with why and until when.
    for r in reports {
        for st in r.steps.iter().filter(|x| x.state == StepState::Frozen) {
            out.push_str(&format!(
                "\ntrain {}: `{}` {}",
                r.train,
                st.name,
                st.reason.as_deref().unwrap_or("frozen")
            ));
        }
    }
    out
}
