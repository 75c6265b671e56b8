//! Reports from CI jobs: `locomotive set-step-state`, re-runs included.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::{Checkout, Identity, PushOutcome, Remote, Store};
use crate::git::wire::{CreateOutcome, NewRef};
use crate::model::tag::{JobState, Tag, Trigger};
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

/// Check a report before the remote is read: the info strings, the trigger's name, the
/// state. Returns the trigger.
fn prepare(opts: &SetStateOptions) -> Result<Trigger> {
    // Each line of an info string becomes one line of the message: nothing else may
    // break it, and keys the protocol reads from a message can't come from a job.
    for line in opts.info.iter().flat_map(|i| i.lines()) {
        crate::model::train::check_one_line("a line of `--info-string`", line)
            .map_err(Error::Input)?;
        let key = line.split(':').next().unwrap_or("").trim();
        if ["by", "reason", "opened-by"].contains(&key) {
            return Err(Error::input(format!(
                "`--info-string` cannot set `{key}:`; konductor reads that field from the tag"
            )));
        }
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
    Ok(trig)
}

/// Whether `--sha` (when given) names the trigger's commit.
fn check_sha(opts: &SetStateOptions, trig_name: &str, commit: &str) -> Result<()> {
    if let Some(sha) = &opts.sha {
        let sha = sha.trim();
        if sha.is_empty() || !commit.starts_with(&sha.to_ascii_lowercase()) || sha.len() < 7 {
            return Err(Error::input(format!(
                "`--sha {sha}` is not the commit of `{trig_name}` ({commit}); the job ran on another commit"
            )));
        }
    }
    Ok(())
}

/// Which run of the trigger a report of `state` belongs to, from the states each run has
/// (run 0 is the first, `…=<state>`; run k ≥ 1 the CI's re-run k, `…=rerun.<k>=<state>`)
/// and whether each is trusted (on the train's commit, and signed when signatures are
/// required).
///
/// A report on a run that already ended is a re-run of the attempt: the CI's Re-run
/// button runs the same trigger again. `started` after any end starts re-run k+1; an end
/// that contradicts the run's (`success` after `failure`) is re-run k+1's end. A repeated
/// report stays one tag: the name is computed from the tags alone, and a racing twin
/// finds it taken.
fn choose_run(state: JobState, runs: &BTreeMap<u32, BTreeMap<JobState, bool>>) -> Result<u32> {
    // A re-run number any tag took, trusted or not, is never reused.
    let highest = runs.keys().next_back().copied().unwrap_or(0);
    let current = runs
        .iter()
        .rev()
        .find(|(_, st)| st.values().any(|t| *t))
        .map_or(0, |(k, _)| *k);
    let trusted_in_current = |s: JobState| {
        runs.get(&current)
            .and_then(|st| st.get(&s))
            .copied()
            .unwrap_or(false)
    };
    let ended = runs
        .get(&current)
        .into_iter()
        .flatten()
        .any(|(s, t)| *t && s.is_terminal());
    let contradicted = match state {
        JobState::Success => trusted_in_current(JobState::Failure),
        JobState::Failure => trusted_in_current(JobState::Success),
        _ => false,
    };
    if (state == JobState::Started && ended) || contradicted {
        next_number(
            highest.max(current),
            crate::model::tag::MAX_RERUN,
            "re-run number",
        )
    } else {
        Ok(current)
    }
}

/// The message of a state tag.
fn state_message(trig_name: &str, run: u32, opts: &SetStateOptions, who: &Identity) -> String {
    let mut msg = if run == 0 {
        format!("{} {}\n\n", trig_name, opts.state)
    } else {
        format!("{} re-run {run} {}\n\n", trig_name, opts.state)
    };
    for i in &opts.info {
        for line in i.lines() {
            msg.push_str(line.trim());
            msg.push('\n');
        }
    }
    msg.push_str(&format!("by: {who}\n"));
    msg
}

/// Record a job's state as an annotated tag on the train's commit. Needs no checkout: it
/// fetches the trigger tag and the commit (trees, no file contents) into the store's cache.
pub fn set_step_state(
    store: &Store,
    opts: &SetStateOptions,
    who: &Identity,
    now: i64,
) -> Result<SetStateResult> {
    let trig = prepare(opts)?;
    let trig_name = trig.tag().to_string();
    // The trigger and this job's states; one prefix read.
    store.refresh(&[format!("{trig_name}*")])?;
    let record = store
        .tag_record(&trig_name)
        .ok_or_else(|| super::control::missing_trigger(store, &trig))?;
    require_trusted_trigger(store, &record, "report for it")?;
    check_sha(opts, &trig_name, &record.commit)?;
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
    let trust: BTreeMap<u32, BTreeMap<JobState, bool>> = runs
        .iter()
        .map(|(k, st)| (*k, st.iter().map(|(s, r)| (*s, trusted(r))).collect()))
        .collect();
    let run = choose_run(opts.state, &trust)?;
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
    let msg = state_message(&trig_name, run, opts, who);
    let oid = store.make_tag(&name, &record.commit, &msg, who, now)?;
    // The commit is the trigger's, which the remote has: the tag object alone will do.
    let outcome = match store.push_tag_create_on_remote_commit(&name, &oid)? {
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

/// Unknown trust bits [`set_step_state_from_checkout`] tries every combination of, at most.
const MAX_UNSEEN: usize = 6;

/// `set-step-state` from the job's checkout, in one connection and no fetch: read the
/// remote's refs (the advertisement a push receives anyway), find the trigger's tag
/// object (and its commit) in the checkout, choose the state tag's name, and send it with
/// a one-object pack. The state tags of earlier reports are seen in the advertisement;
/// their objects are read from the checkout when it has them, and when it doesn't, the
/// name is chosen only if it is the same whatever those tags turn out to be (trusted or
/// not).
///
/// `Ok(None)`: this path can't decide or didn't create the tag (the checkout lacks the
/// trigger or its commit, a transport not spoken natively, a tag that appeared meanwhile,
/// a refusal, any error): the caller then runs [`set_step_state`], which reads everything
/// and says what is wrong. Nothing was written in that case.
pub fn set_step_state_from_checkout(
    remote: &Remote,
    checkout: &Checkout,
    signing_key: Option<&Path>,
    allowed_signers: Option<&Path>,
    opts: &SetStateOptions,
    who: &Identity,
    now: i64,
) -> Result<Option<SetStateResult>> {
    one_push(
        remote,
        &|name, oid| checkout.tag_record(name, oid, allowed_signers),
        &|commit| checkout.has_commit(commit),
        signing_key,
        allowed_signers.is_some(),
        opts,
        who,
        now,
    )
}

/// `set-step-state` without a checkout, with no git process of ours: one upload-pack
/// conversation reads the trigger's and its states' refs (the advertisement's peeled
/// `^{}` lines give each tag's commit); with `allowed_signers`, it also receives their
/// tag objects (`have` the train's commit, so the pack holds the tags alone), loaded by
/// libgit2, and their signatures are verified. Then the one push of
/// [`set_step_state_from_checkout`].
///
/// `Ok(None)` as there: the caller runs [`set_step_state`]. Nothing was written then.
pub fn set_step_state_reading_tags(
    remote: &Remote,
    signing_key: Option<&Path>,
    allowed_signers: Option<&Path>,
    opts: &SetStateOptions,
    who: &Identity,
    now: i64,
) -> Result<Option<SetStateResult>> {
    let trig = prepare(opts)?;
    // A remote on this machine is its own best checkout: its tag objects and commits are
    // read in place (no upload-pack), the push goes to its receive-pack as usual.
    if let Ok(crate::git::wire::Endpoint::Local(path)) =
        crate::git::wire::Endpoint::parse(&remote.url)
    {
        if let Some(repo) = Checkout::open_local(&path) {
            return set_step_state_from_checkout(
                remote,
                &repo,
                signing_key,
                allowed_signers,
                opts,
                who,
                now,
            );
        }
    }
    let trig_ref = format!("refs/tags/{}", trig.tag());
    let states_prefix = format!("{trig_ref}=");
    let keep = |name: &str| name.starts_with(&trig_ref);
    let signed = allowed_signers.is_some();
    let mut choose = |refs: &std::collections::HashMap<String, String>| {
        let mut w = crate::git::wire::Wants::default();
        let Some(commit) = refs.get(&format!("{trig_ref}^{{}}")) else {
            return w;
        };
        if signed {
            // The tags on the train's commit (others are untrusted whatever they say).
            w.wants = refs
                .iter()
                .filter(|(n, _)| {
                    (**n == trig_ref || n.starts_with(&states_prefix)) && !n.ends_with("^{}")
                })
                .filter(|(n, _)| refs.get(&format!("{n}^{{}}")) == Some(commit))
                .map(|(_, oid)| oid.clone())
                .collect();
            w.wants.sort();
            w.haves = vec![commit.clone()];
        }
        w
    };
    let Some(fetched) = crate::git::store::fetch_after_look(remote, &keep, &mut choose) else {
        return Ok(None);
    };
    let refs = fetched.refs;
    let Some(commit) = refs.get(&format!("{trig_ref}^{{}}")).cloned() else {
        return Ok(None);
    };
    let objects = if signed {
        match Checkout::from_pack(&fetched.pack) {
            Ok(c) => Some(c),
            Err(_) => return Ok(None),
        }
    } else {
        None
    };
    // A tag as seen in the upload-pack advertisement: the same id as the push's, and
    // an annotated tag (a peeled line). Unsigned, its commit is all the run choice reads.
    let lookup = |name: &str, oid: &str| -> Option<TagRecord> {
        let r = format!("refs/tags/{name}");
        if refs.get(&r).map(String::as_str) != Some(oid) {
            return None;
        }
        let peeled = refs.get(&format!("{r}^{{}}"))?;
        match &objects {
            Some(o) => o
                .tag_record(name, oid, allowed_signers)
                .filter(|rec| rec.commit == *peeled),
            None => Some(TagRecord {
                name: name.to_string(),
                commit: peeled.clone(),
                tagger: None,
                time: None,
                message: String::new(),
                signer: None,
                signature_error: None,
            }),
        }
    };
    one_push(
        remote,
        &lookup,
        &|c| c == commit,
        signing_key,
        signed,
        opts,
        who,
        now,
    )
}

/// The one push of [`set_step_state_from_checkout`] and [`set_step_state_reading_tags`]:
/// `lookup` gives the record of a tag whose ref holds an id (None: not seen),
/// `commit_known` whether the remote has a commit.
#[allow(clippy::too_many_arguments)]
fn one_push(
    remote: &Remote,
    lookup: &dyn Fn(&str, &str) -> Option<TagRecord>,
    commit_known: &dyn Fn(&str) -> bool,
    signing_key: Option<&Path>,
    signed: bool,
    opts: &SetStateOptions,
    who: &Identity,
    now: i64,
) -> Result<Option<SetStateResult>> {
    let trig = prepare(opts)?;
    let trig_name = trig.tag().to_string();
    let trig_ref = format!("refs/tags/{trig_name}");
    let states_prefix = format!("{trig_ref}=");
    let keep = |name: &str| name == trig_ref || name.starts_with(&states_prefix);
    let mut chosen: Option<(u32, String)> = None;
    let mut failure: Option<Error> = None;
    let mut decide = |refs: &std::collections::HashMap<String, String>| -> Option<NewRef> {
        let record = lookup(&trig_name, refs.get(&trig_ref)?)?;
        if signed && record.signer.is_none() {
            return None;
        }
        if !commit_known(&record.commit) || check_sha(opts, &trig_name, &record.commit).is_err() {
            return None;
        }
        // Every run's states, trusted (Some(bool)) or not seen (None).
        let mut runs: BTreeMap<u32, BTreeMap<JobState, Option<bool>>> = BTreeMap::new();
        for (name, oid) in refs {
            let Some(tag) = name.strip_prefix("refs/tags/") else {
                continue;
            };
            let (k, s) = match Tag::parse_any(tag) {
                Ok(Some(Tag::State(t, s))) if t == trig => (0, s),
                Ok(Some(Tag::Rerun(t, k, s))) if t == trig => (k, s),
                _ => continue,
            };
            let seen = lookup(tag, oid)
                .map(|r| r.commit == record.commit && (!signed || r.signer.is_some()));
            runs.entry(k).or_default().insert(s, seen);
        }
        let unseen: Vec<(u32, JobState)> = runs
            .iter()
            .flat_map(|(k, st)| {
                st.iter()
                    .filter(|(_, t)| t.is_none())
                    .map(|(s, _)| (*k, *s))
            })
            .collect();
        if unseen.len() > MAX_UNSEEN {
            return None;
        }
        // The run must be the same whatever the unseen tags are.
        let mut run = None;
        for bits in 0u32..(1 << unseen.len()) {
            let trust: BTreeMap<u32, BTreeMap<JobState, bool>> = runs
                .iter()
                .map(|(k, st)| {
                    let st = st
                        .iter()
                        .map(|(s, t)| {
                            let i = unseen.iter().position(|u| *u == (*k, *s));
                            (*s, t.unwrap_or_else(|| (bits >> i.unwrap_or(0)) & 1 == 1))
                        })
                        .collect();
                    (*k, st)
                })
                .collect();
            let r = choose_run(opts.state, &trust).ok()?;
            if run.is_some_and(|x| x != r) {
                return None;
            }
            run = Some(r);
        }
        let run = run?;
        // An existing tag of that name: the general path says whether it counts.
        if runs
            .get(&run)
            .is_some_and(|st| st.contains_key(&opts.state))
        {
            return None;
        }
        let name = trig.run_state_tag(run, opts.state).to_string();
        let msg = state_message(&trig_name, run, opts, who);
        let made =
            crate::git::store::tag_object_bytes(&name, &record.commit, &msg, who, now, signing_key)
                .and_then(|raw| crate::git::store::single_object_pack(git2::ObjectType::Tag, &raw));
        match made {
            Ok((oid, pack)) => {
                chosen = Some((run, name.clone()));
                Some(NewRef {
                    refname: format!("refs/tags/{name}"),
                    oid,
                    pack,
                })
            }
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    };
    let outcome = crate::git::store::create_after_look(remote, &keep, &mut decide);
    if let Some(e) = failure {
        return Err(e);
    }
    match (outcome, chosen) {
        (Some(CreateOutcome::Created), Some((run, name))) => Ok(Some(SetStateResult {
            tag: name,
            outcome: "created".into(),
            rerun: Some(run).filter(|k| *k > 0),
            train: trig.train.to_string(),
        })),
        _ => Ok(None),
    }
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

#[cfg(test)]
mod choose_run_tests {
    use super::*;

    fn runs(v: &[(u32, JobState, bool)]) -> BTreeMap<u32, BTreeMap<JobState, bool>> {
        let mut m: BTreeMap<u32, BTreeMap<JobState, bool>> = BTreeMap::new();
        for (k, s, t) in v {
            m.entry(*k).or_default().insert(*s, *t);
        }
        m
    }

    #[test]
    fn a_report_after_the_end_is_the_next_rerun() {
        use JobState::*;
        assert_eq!(choose_run(Started, &runs(&[])).unwrap(), 0);
        assert_eq!(
            choose_run(Success, &runs(&[(0, Started, true)])).unwrap(),
            0
        );
        // Started after an end: re-run 1; an end contradicting the run's: re-run 1.
        let ended = runs(&[(0, Started, true), (0, Failure, true)]);
        assert_eq!(choose_run(Started, &ended).unwrap(), 1);
        assert_eq!(choose_run(Success, &ended).unwrap(), 1);
        assert_eq!(choose_run(Failure, &ended).unwrap(), 0);
        // Untrusted tags don't end a run, but their numbers are never reused.
        let spoofed = runs(&[(0, Started, true), (0, Failure, false), (3, Started, false)]);
        assert_eq!(choose_run(Success, &spoofed).unwrap(), 0);
        let ended_with_junk = runs(&[(0, Success, true), (3, Started, false)]);
        assert_eq!(choose_run(Started, &ended_with_junk).unwrap(), 4);
    }
}
