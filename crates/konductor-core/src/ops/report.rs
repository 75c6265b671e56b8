//! Reports from CI jobs: `locomotive set-step-state`, re-runs included.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::{Identity, PushOutcome, Store};
use crate::model::tag::{JobState, Tag};
use crate::model::train::{short, TagRecord};

#[allow(unused_imports)]
use super::*;

/// Options for `locomotive set-step-state`.
#[derive(Debug, Clone)]
pub struct SetStateOptions {
    /// The trigger tag the job was started by.
    pub triggering_tag: String,
    /// The state to record.
    pub state: JobState,
    /// Info strings (`key:value`), one per line in the tag message.
    pub info: Vec<String>,
    /// The commit the job ran on, checked against the trigger's.
    pub sha: Option<String>,
}

/// What `set-step-state` did.
#[derive(Debug, Clone, Serialize)]
pub struct SetStateResult {
    /// The state tag.
    pub tag: String,
    /// `created` or `already-recorded`.
    pub outcome: String,
    /// The re-run of the attempt the state was recorded for (absent: the first run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<u32>,
    /// The train.
    pub train: String,
}

/// Record a job's state as an annotated tag on the train's commit. Needs no checkout: it
/// fetches the trigger tag and the commit (trees, no file contents) into the store's cache.
pub fn set_step_state(
    store: &Store,
    opts: &SetStateOptions,
    who: &Identity,
    now: i64,
) -> Result<SetStateResult> {
    // Each line of an info string becomes one line of the message: nothing else may
    // break it (checked before the remote is read).
    for line in opts.info.iter().flat_map(|i| i.lines()) {
        crate::model::train::check_one_line("a line of `--info-string`", line)
            .map_err(Error::Input)?;
    }
    let trig = match opts.triggering_tag.parse::<Tag>()? {
        Tag::Trigger(tr) => tr,
        other => {
            return Err(Error::input(format!(
                "`{other}` is not a trigger tag; expected `release=N.P=<step>.<job>`{}",
                match &other {
                    Tag::State(tr, _) | Tag::Rerun(tr, _, _) => {
                        format!(" (did you mean `{}`?)", tr.tag())
                    }
                    _ => String::new(),
                }
            )))
        }
    };
    if opts.state == JobState::Timeout {
        return Err(Error::input("`timeout` is recorded by `konductor tick`, not reported by jobs; report `failure` instead"));
    }
    let trig_name = trig.tag().to_string();
    // The trigger and this job's states; one prefix read.
    store.refresh(&[format!("{trig_name}*")])?;
    let record = store
        .tag_record(&trig_name)
        .ok_or_else(|| super::control::missing_trigger(store, &trig))?;
    require_trusted_trigger(store, &record, "report for it")?;
    if let Some(sha) = &opts.sha {
        let sha = sha.trim();
        if sha.is_empty() || !record.commit.starts_with(&sha.to_ascii_lowercase()) || sha.len() < 7
        {
            return Err(Error::input(format!(
                "`--sha {sha}` is not the commit of `{trig_name}` ({}); the job ran on another commit",
                record.commit
            )));
        }
    }
    // Every run's states: run 0 is the first (`…=<state>`), run k ≥ 1 the CI's re-run k
    // of the same trigger (`…=rerun.<k>=<state>`).
    let mut runs: BTreeMap<u32, BTreeMap<JobState, TagRecord>> = BTreeMap::new();
    for s in JobState::ALL {
        if let Some(r) = store.tag_record(&trig.state_tag(s).to_string()) {
            runs.entry(0).or_default().insert(s, r);
        }
    }
    for n in store.tag_names(&format!("{trig_name}=rerun.*"))? {
        if let Ok(Some(Tag::Rerun(t, k, s))) = Tag::parse_any(&n) {
            if t == trig {
                if let Some(r) = store.tag_record(&n) {
                    runs.entry(k).or_default().insert(s, r);
                }
            }
        }
    }
    let signed = store.requires_signatures();
    let trusted = |r: &TagRecord| r.commit == record.commit && (!signed || r.signer.is_some());
    // A re-run number any tag took, trusted or not, is never reused.
    let highest = runs.keys().next_back().copied().unwrap_or(0);
    let current = runs
        .iter()
        .rev()
        .find(|(_, st)| st.values().any(trusted))
        .map_or(0, |(k, _)| *k);
    let cur: BTreeMap<JobState, &TagRecord> = runs
        .get(&current)
        .into_iter()
        .flatten()
        .filter(|(_, r)| trusted(r))
        .map(|(s, r)| (*s, r))
        .collect();
    // A report on a run that already ended is a re-run of the attempt: the CI's Re-run
    // button runs the same trigger again. `started` after any end starts re-run k+1; an
    // end that contradicts the run's (`success` after `failure`) is re-run k+1's end. A
    // repeated report stays one tag: the name is computed from the tags alone, and a
    // racing twin finds it taken.
    let ended = cur.keys().any(|s| s.is_terminal());
    let contradicted = match opts.state {
        JobState::Success => cur.contains_key(&JobState::Failure),
        JobState::Failure => cur.contains_key(&JobState::Success),
        _ => false,
    };
    let run = if (opts.state == JobState::Started && ended) || contradicted {
        next_number(
            highest.max(current),
            crate::model::tag::MAX_RERUN,
            "re-run number",
        )?
    } else {
        current
    };
    let name = trig.run_state_tag(run, opts.state).to_string();
    let existing = runs.get(&run).and_then(|st| st.get(&opts.state));
    if let Some(r) = existing.filter(|r| signed && r.signer.is_none() && r.commit == record.commit)
    {
        return Err(Error::Conflict(format!(
            "`{name}` already exists on `{}` but is not signed by an allowed signer ({}); it was not written for this job and nothing was recorded; a step left without a state is re-run by its trigger timeout, else use `konductor retry`",
            store.remote().url,
            r.signature_error.as_deref().unwrap_or("unsigned")
        )));
    }
    if let Some(r) = existing.filter(|r| r.commit != record.commit) {
        return Err(Error::Conflict(format!(
            "`{name}` already exists on `{}` but points to commit {}, not the train's {}; it was not written for this job (spoofed?) and nothing was recorded; a step left without a state is re-run by its trigger timeout, else use `konductor retry`",
            store.remote().url,
            short(&r.commit),
            short(&record.commit)
        )));
    }
    if existing.is_some() {
        return Ok(SetStateResult {
            tag: name,
            outcome: "already-recorded".into(),
            rerun: Some(run).filter(|k| *k > 0),
            train: trig.train.to_string(),
        });
    }
    let mut msg = if run == 0 {
        format!("{} {}\n\n", trig_name, opts.state)
    } else {
        format!("{} re-run {run} {}\n\n", trig_name, opts.state)
    };
    for i in &opts.info {
        for line in i.lines() {
            // Keys the protocol reads from a message can't come from a job's info string.
            let key = line.split(':').next().unwrap_or("").trim();
            if ["by", "reason", "opened-by"].contains(&key) {
                return Err(Error::input(format!(
                    "`--info-string` cannot set `{key}:`; konductor reads that field from the tag"
                )));
            }
            msg.push_str(line.trim());
            msg.push('\n');
        }
    }
    msg.push_str(&format!("by: {who}\n"));
    let oid = store.make_tag(&name, &record.commit, &msg, who, now)?;
    let outcome = match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "created",
        PushOutcome::AlreadyExists(_) => "already-recorded",
    };
    Ok(SetStateResult {
        tag: name,
        outcome: outcome.into(),
        rerun: Some(run).filter(|k| *k > 0),
        train: trig.train.to_string(),
    })
}

/// With verification on, refuse a trigger no allowed signer signed: a job must not act on
/// a forged request.
pub(crate) fn require_trusted_trigger(
    store: &Store,
    record: &TagRecord,
    refusing_to: &str,
) -> Result<()> {
    if store.requires_signatures() && record.signer.is_none() {
        return Err(Error::input(format!(
            "triggering tag `{}` is not signed by an allowed signer ({}); refusing to {refusing_to}",
            record.name,
            record.signature_error.as_deref().unwrap_or("unsigned")
        )));
    }
    Ok(())
}
