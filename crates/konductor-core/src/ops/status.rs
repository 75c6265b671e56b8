//! Status reports: what `status`, `log` and the board show. The JSON form is stable and
//! documented in `docs/status-json.md`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::plan::{StepKind, StepState, TrainState};
use crate::model::sdd::Sdd;
use crate::model::tag::JobState;
use crate::model::time::rfc3339;
use crate::model::train::{message_field, Event, Observed, TagRecord};
use crate::ops::Planned;

/// Where a train's deploys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Not deployed anywhere yet (or failed before).
    None,
    /// Reached its staging target (`complete-verification`).
    Staging,
    /// Reached its production target (`complete-deploy`).
    Production,
}

/// One attempt in the history of a step.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    /// Attempt number (job id).
    pub attempt: u32,
    /// The trigger tag.
    pub tag: String,
    /// Outcome so far: `triggered`, `started`, `success`, `failure` or `timeout` (of the
    /// run that counts: the newest re-run, if any).
    pub state: String,
    /// The re-run that counts (`…=rerun.<k>=<state>`), when the CI ran the trigger again
    /// after it ended; the times below are that re-run's. Absent for the first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<u32>,
    /// When triggered.
    pub triggered_at: Option<String>,
    /// When started.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Seconds from start (or trigger) to finish.
    pub duration_secs: Option<i64>,
    /// The info strings reported by the job (last report first).
    pub info: Option<String>,
    /// The `job_url:` info string, if any.
    pub job_url: Option<String>,
    /// Why it was triggered.
    pub reason: Option<String>,
}

/// One step of a train.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Step name.
    pub name: String,
    /// `job`, `virtual`, `manual` or `target`.
    pub kind: StepKind,
    /// `pending|triggered|started|success|failure|blocked|skipped|superseded|waiting|frozen`.
    pub state: StepState,
    /// The attempt that counts (0: never triggered).
    pub attempt: u32,
    /// Info string of the attempt that counts.
    pub info: Option<String>,
    /// Job URL of the attempt that counts.
    pub job_url: Option<String>,
    /// Why the step is in this state.
    pub reason: Option<String>,
    /// Dependencies.
    pub needs: Vec<String>,
    /// Triggered / started / finished times of the attempt that counts (RFC 3339).
    pub triggered_at: Option<String>,
    /// See `triggered_at`.
    pub started_at: Option<String>,
    /// See `triggered_at`.
    pub finished_at: Option<String>,
    /// Seconds, for the attempt that counts.
    pub duration_secs: Option<i64>,
    /// Who unblocked a manual gate.
    pub unblocked_by: Option<String>,
    /// When it was unblocked.
    pub unblocked_at: Option<String>,
    /// When a `frozen` deploy step's freeze ends (RFC 3339), when it has an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptReport>,
}

/// One train.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// `N.P`.
    pub train: String,
    /// The commit.
    pub sha: String,
    /// `running|succeeded|failed|blocked|cancelled`.
    pub state: TrainState,
    /// The target.
    pub target: String,
    /// Every step the target needs.
    pub steps: Vec<StepReport>,
    /// When the train was opened.
    pub opened_at: String,
    /// Who opened it.
    pub opened_by: String,
    /// Furthest environment reached.
    pub placement: Placement,
    /// Who cancelled, and why.
    pub cancelled_by: Option<String>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Tags that were ignored, and why.
    pub warnings: Vec<String>,
    /// Read from the archive (its tags were collected by `gc`).
    pub archived: bool,
}

impl TrainReport {
    /// Build the report of a planned train.
    pub fn new(p: &Planned) -> TrainReport {
        let obs = &p.obs;
        let steps = p
            .plan
            .steps
            .iter()
            .map(|v| {
                let atts = attempts(obs, &v.name);
                let cur = atts.iter().find(|a| a.attempt == v.attempt);
                let unblock = obs
                    .unblocked
                    .get(&v.name)
                    .filter(|_| v.kind == StepKind::Manual && v.state == StepState::Success);
                StepReport {
                    name: v.name.clone(),
                    kind: v.kind,
                    state: v.state,
                    attempt: v.attempt,
                    info: cur.and_then(|a| a.info.clone()),
                    job_url: cur.and_then(|a| a.job_url.clone()),
                    reason: v.reason.clone(),
                    needs: p
                        .sdd
                        .step(&v.name)
                        .map(|s| s.needs.clone())
                        .unwrap_or_default(),
                    triggered_at: cur.and_then(|a| a.triggered_at.clone()),
                    started_at: cur.and_then(|a| a.started_at.clone()),
                    finished_at: cur.and_then(|a| a.finished_at.clone()),
                    duration_secs: cur.and_then(|a| a.duration_secs),
                    unblocked_by: unblock.map(|e| e.who("by")),
                    unblocked_at: unblock.map(|e| rfc3339(e.at)),
                    until: v.until.clone(),
                    attempts: atts,
                }
            })
            .collect();
        let placement = placement(p);
        TrainReport {
            train: obs.train.to_string(),
            sha: obs.commit.clone(),
            state: p.plan.state,
            target: p.plan.target.clone(),
            steps,
            opened_at: rfc3339(obs.opened.at),
            opened_by: obs.opened.who("opened-by"),
            placement,
            cancelled_by: obs.cancelled.as_ref().map(|e| e.who("by")),
            cancel_reason: obs
                .cancelled
                .as_ref()
                .and_then(|e| e.field("reason").map(str::to_string)),
            warnings: p.plan.warnings.clone(),
            archived: false,
        }
    }

    /// One step by name.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Whether every dependency of `s` is done.
    pub fn is_ready(&self, s: &StepReport) -> bool {
        s.needs
            .iter()
            .all(|n| self.step(n).is_none_or(|d| d.state.is_done()))
    }

    /// Whether `s` is a manual gate waiting for a person: blocked, with every
    /// dependency done. Any other blocked step waits for a failure to be retried.
    pub fn is_waiting_gate(&self, s: &StepReport) -> bool {
        s.kind == StepKind::Manual && s.state == StepState::Blocked && self.is_ready(s)
    }

    /// The manual gates waiting for a person (none on a cancelled train).
    pub fn waiting_gates(&self) -> impl Iterator<Item = &StepReport> {
        self.steps
            .iter()
            .filter(|s| self.state != TrainState::Cancelled && self.is_waiting_gate(s))
    }
}

/// The command that unblocks a gate, as `status` and the board print it.
pub fn unblock_command(train: &str, step: &str) -> String {
    format!("konductor unblock --train {train} --step {step} --reason \"…\"")
}

/// The names of the staging and production targets in a graph, by convention: the
/// final target is production; a virtual target it needs is staging.
pub fn environments(p: &Planned) -> (Option<String>, String) {
    let prod = p.plan.target.clone();
    let staging = p
        .plan
        .steps
        .iter()
        .rev()
        .find(|s| s.kind == StepKind::Virtual && s.name != prod)
        .map(|s| s.name.clone());
    (staging, prod)
}

fn placement(p: &Planned) -> Placement {
    let (staging, prod) = environments(p);
    let done = |n: &str| p.plan.step(n).is_some_and(|s| s.state.is_done());
    if done(&prod) && p.plan.state == TrainState::Succeeded {
        Placement::Production
    } else if staging.as_deref().is_some_and(done) {
        Placement::Staging
    } else {
        Placement::None
    }
}

fn attempts(obs: &Observed, step: &str) -> Vec<AttemptReport> {
    let Some(atts) = obs.attempts.get(step) else {
        return vec![];
    };
    atts.iter()
        .map(|(job, a)| {
            let trig = a.triggered.as_ref();
            let states = a.current();
            let started = states.get(&JobState::Started);
            let end = [JobState::Timeout, JobState::Failure, JobState::Success]
                .into_iter()
                .find_map(|s| states.get(&s));
            let info_ev: Option<&Event> = end.or(started);
            let info = info_ev
                .map(|e| info_of(&e.message))
                .filter(|s| !s.is_empty());
            let job_url = [end, started]
                .into_iter()
                .flatten()
                .find_map(|e| message_field(&e.message, "job_url").map(str::to_string));
            let from = started.or(trig).map(|e| e.at);
            AttemptReport {
                attempt: *job,
                tag: trig.map(|e| e.tag.clone()).unwrap_or_default(),
                state: a
                    .outcome()
                    .map_or("triggered", JobState::as_str)
                    .to_string(),
                rerun: Some(a.run()).filter(|k| *k > 0),
                triggered_at: trig.map(|e| rfc3339(e.at)),
                started_at: started.map(|e| rfc3339(e.at)),
                finished_at: end.map(|e| rfc3339(e.at)),
                // Tagger times are anyone's to write: an end before the start is 0 s.
                duration_secs: end.zip(from).map(|(e, f)| e.at.saturating_sub(f).max(0)),
                info,
                job_url,
                reason: trig.and_then(|e| e.field("reason").map(str::to_string)),
            }
        })
        .collect()
}

/// The info strings of a state tag message: its body lines other than `by:`.
fn info_of(message: &str) -> String {
    message
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("by:"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One audit-log event.
#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    /// RFC 3339 time.
    pub at: String,
    /// Seconds since the epoch (for sorting).
    #[serde(skip)]
    pub secs: i64,
    /// The train.
    pub train: String,
    /// `opened`, `triggered`, `started`, `success`, `failure`, `timeout`, `unblocked`,
    /// `skipped`, `superseded`, `claimed` (an environment claim, `env=…`), `cancelled`,
    /// or `malformed`.
    pub event: String,
    /// The step, if any.
    pub step: Option<String>,
    /// The attempt, if any.
    pub attempt: Option<u32>,
    /// The re-run of the attempt a state belongs to (`…=rerun.<k>=<state>`); absent for
    /// the first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<u32>,
    /// Who: the verified signer when signatures are checked and the tag's verifies, else
    /// the `by:` (or `opened-by:`) field, else the tagger.
    pub by: String,
    /// With signature verification on: whether `by` is a verified signer (`false`: `by`
    /// is only what the tag claims). Absent when verification is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The commit the tag points to.
    pub commit: String,
    /// The tag.
    pub tag: String,
    /// The tag message, first lines joined.
    pub info: String,
}

/// The audit log of tags, in causal order (see [`log_events_causal`]), without the step
/// graphs: dependencies between steps are then ordered by time only.
pub fn log_events(records: &[TagRecord]) -> Vec<LogEvent> {
    log_events_causal(records, &BTreeMap::new())
}

/// The audit log of tags, ordered by what caused what, then by time: a train's events
/// after its opening; a state after its trigger, an end after its start, a re-run after
/// the attempt's earlier runs; an attempt after the one before it, a retry after the
/// failure it retries; with the train's graph in `graphs` (by train id), a step's first
/// trigger, an unblock and a skip after the success, unblock or skip of each dependency
/// that allowed it. Events
/// nothing orders go by time, then opened, outcomes (success, failure, timeout, unblock,
/// skip), triggers, starts, cancel, then tag name, so that a tick's trigger is never
/// listed before the unblock of the same second that allowed it.
pub fn log_events_causal(records: &[TagRecord], graphs: &BTreeMap<String, Sdd>) -> Vec<LogEvent> {
    use crate::model::tag::{StepVerb, Tag};
    let mut reasons: Vec<Option<String>> = Vec::new();
    let out: Vec<LogEvent> = records
        .iter()
        .filter_map(|r| {
            let mut rerun = None;
            let (train, event, step, attempt) = match Tag::parse_any(&r.name) {
                Ok(Some(Tag::Train(t))) => (t.to_string(), "opened".to_string(), None, None),
                Ok(Some(Tag::Rerun(tr, k, s))) => {
                    rerun = Some(k);
                    (
                        tr.train.to_string(),
                        s.as_str().into(),
                        Some(tr.step),
                        Some(tr.job),
                    )
                }
                Ok(Some(Tag::Trigger(tr))) => (
                    tr.train.to_string(),
                    "triggered".into(),
                    Some(tr.step),
                    Some(tr.job),
                ),
                Ok(Some(Tag::State(tr, s))) => (
                    tr.train.to_string(),
                    s.as_str().into(),
                    Some(tr.step),
                    Some(tr.job),
                ),
                Ok(Some(Tag::Step(t, s, v))) => (
                    t.to_string(),
                    match v {
                        StepVerb::Unblocked => "unblocked",
                        StepVerb::Skipped => "skipped",
                        StepVerb::Superseded => "superseded",
                    }
                    .into(),
                    Some(s),
                    None,
                ),
                Ok(Some(Tag::Cancelled(t))) => (t.to_string(), "cancelled".into(), None, None),
                // A claim of an environment (`env=<env>.<turn>`): the train and the deploy
                // step its message names.
                Ok(None) if crate::model::env::Claim::parse(&r.name).is_some() => {
                    let train = message_field(&r.message, "train")?
                        .parse::<crate::model::tag::TrainId>()
                        .ok()?;
                    let step = message_field(&r.message, "step").map(str::to_string);
                    (train.to_string(), "claimed".into(), step, None)
                }
                // A freeze, unfreeze, pin or unpin record of an environment
                // (`env=<env>=<k>`): the train it names (a pin's rollback target), or `-`.
                Ok(None) => {
                    crate::model::freeze::RecordName::parse(&r.name)?;
                    let event = match message_field(&r.message, "action")? {
                        "freeze" => "frozen",
                        "unfreeze" => "unfrozen",
                        "pin" => "pinned",
                        "unpin" => "unpinned",
                        _ => return None,
                    };
                    let train = message_field(&r.message, "train")
                        .and_then(|t| t.parse::<crate::model::tag::TrainId>().ok())
                        .map_or_else(|| "-".to_string(), |t| t.to_string());
                    (train, event.into(), None, None)
                }
                Err(_) => ("?".into(), "malformed".into(), None, None),
            };
            let by = r
                .signer
                .clone()
                .or_else(|| message_field(&r.message, "by").map(str::to_string))
                .or_else(|| message_field(&r.message, "opened-by").map(str::to_string))
                .or_else(|| r.tagger.clone())
                .unwrap_or_else(|| "unknown".into());
            let info = r
                .message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("by:") && !l.starts_with("opened-by:"))
                .collect::<Vec<_>>()
                .join("; ");
            let secs = crate::model::time::clamp(r.time.unwrap_or(0));
            reasons.push(message_field(&r.message, "reason").map(str::to_string));
            Some(LogEvent {
                at: rfc3339(secs),
                secs,
                train,
                event,
                step,
                attempt,
                rerun,
                by,
                verified: match (&r.signer, &r.signature_error) {
                    (Some(_), _) => Some(true),
                    (None, Some(_)) => Some(false),
                    (None, None) => None,
                },
                commit: r.commit.clone(),
                tag: r.name.clone(),
                info,
            })
        })
        .collect();
    causal_sort(out, &reasons, graphs)
}

/// Among events nothing else orders, in the same second: what allows comes before what
/// it allows.
fn rank(event: &str) -> u8 {
    match event {
        "opened" => 0,
        "success" | "failure" | "timeout" | "unblocked" | "skipped" | "superseded" | "claimed" => 1,
        "triggered" => 2,
        "started" => 3,
        "cancelled" => 4,
        _ => 5,
    }
}

/// The attempt a retry trigger's reason names (`automatic retry after attempt 2 failed`,
/// `manual retry after attempt 2`).
fn retry_after(reason: &str) -> Option<u32> {
    let rest = reason
        .strip_prefix("automatic retry after attempt ")
        .or_else(|| reason.strip_prefix("manual retry after attempt "))?;
    rest.split(' ').next()?.parse().ok()
}

/// The steps whose being done let `step` start: its needs, through virtual steps (which
/// have no tags of their own).
fn tagged_needs<'a>(sdd: &'a Sdd, step: &str, out: &mut Vec<&'a str>) {
    let Some(s) = sdd.step(step) else { return };
    for d in &s.needs {
        match sdd.step(d) {
            Some(ds) if ds.is_virtual => tagged_needs(sdd, d, out),
            Some(ds) if !out.contains(&ds.name.as_str()) => out.push(ds.name.as_str()),
            _ => {}
        }
    }
}

/// A topological order of the causal edges, by (time, rank, tag) among what is ready.
fn causal_sort(
    events: Vec<LogEvent>,
    reasons: &[Option<String>],
    graphs: &BTreeMap<String, Sdd>,
) -> Vec<LogEvent> {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    type Key<'a> = (&'a str, &'a str, u32);
    let n = events.len();
    let mut opened: HashMap<&str, usize> = HashMap::new();
    let mut triggers: HashMap<Key, usize> = HashMap::new();
    let mut states: HashMap<Key, Vec<usize>> = HashMap::new();
    // The first event that made each step done: (train, step) → index.
    let mut done: HashMap<(&str, &str), usize> = HashMap::new();
    let mut first_job: HashMap<(&str, &str), u32> = HashMap::new();
    // Environment claims of each (train, deploy step): a trigger comes after them.
    let mut claims: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        match (e.event.as_str(), e.step.as_deref(), e.attempt) {
            ("opened", _, _) => {
                opened.insert(&e.train, i);
            }
            ("claimed", Some(s), None) => claims.entry((&e.train, s)).or_default().push(i),
            ("triggered", Some(s), Some(j)) => {
                triggers.insert((&e.train, s, j), i);
                let f = first_job.entry((&e.train, s)).or_insert(j);
                *f = (*f).min(j);
            }
            (_, Some(s), Some(j)) => states.entry((&e.train, s, j)).or_default().push(i),
            _ => {}
        }
        if let ("success" | "unblocked" | "skipped", Some(s)) = (e.event.as_str(), &e.step) {
            let first = done.entry((&e.train, s)).or_insert(i);
            if (e.secs, &e.tag) < (events[*first].secs, &events[*first].tag) {
                *first = i;
            }
        }
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in events.iter().enumerate() {
        let p = &mut preds[i];
        if e.event != "opened" {
            if let Some(&o) = opened.get(e.train.as_str()) {
                p.push(o);
            }
        }
        let t = e.train.as_str();
        if let (Some(s), None, Some(sdd)) = (e.step.as_deref(), e.attempt, graphs.get(t)) {
            // An unblock or a skip: a gate waits for its dependencies, and a skip is
            // judged once they are done.
            let mut needs = Vec::new();
            tagged_needs(sdd, s, &mut needs);
            p.extend(needs.iter().filter_map(|d| done.get(&(t, *d)).copied()));
        }
        let (Some(s), Some(j)) = (e.step.as_deref(), e.attempt) else {
            continue;
        };
        if e.event == "triggered" {
            if let Some(&k) = j.checked_sub(1).and_then(|b| triggers.get(&(t, s, b))) {
                p.push(k);
            }
            for &k in claims.get(&(t, s)).into_iter().flatten() {
                if events[k].secs <= e.secs {
                    p.push(k);
                }
            }
            if let Some(after) = reasons[i].as_deref().and_then(retry_after) {
                for &k in states.get(&(t, s, after)).into_iter().flatten() {
                    let f = &events[k];
                    if matches!(f.event.as_str(), "failure" | "timeout") && f.secs <= e.secs {
                        p.push(k);
                    }
                }
            }
            if let Some(sdd) = graphs.get(t) {
                if first_job.get(&(t, s)) == Some(&j) {
                    let mut needs = Vec::new();
                    tagged_needs(sdd, s, &mut needs);
                    p.extend(needs.iter().filter_map(|d| done.get(&(t, *d)).copied()));
                }
            }
            continue;
        }
        if let Some(&k) = triggers.get(&(t, s, j)) {
            p.push(k);
        }
        let run = e.rerun.unwrap_or(0);
        for &k in states.get(&(t, s, j)).into_iter().flatten() {
            let o = &events[k];
            let orun = o.rerun.unwrap_or(0);
            let earlier_run = orun < run && o.secs <= e.secs;
            let its_start = orun == run && o.event == "started" && e.event != "started";
            if k != i && (earlier_run || its_start) {
                p.push(k);
            }
        }
    }
    let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ps) in preds.iter().enumerate() {
        for &k in ps {
            succs[k].push(i);
        }
    }
    let key = |i: usize| {
        let e = &events[i];
        Reverse((e.secs, rank(&e.event), e.tag.clone(), i))
    };
    let mut ready: BinaryHeap<_> = (0..n).filter(|&i| waiting[i] == 0).map(key).collect();
    let mut emitted = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let i = match ready.pop() {
            Some(Reverse((_, _, _, i))) if !emitted[i] => i,
            Some(_) => continue,
            // Only a cycle (which these edges cannot make) leaves nothing ready: go on
            // by time rather than lose events.
            None => (0..n)
                .filter(|&i| !emitted[i])
                .min_by_key(|&i| key(i).0)
                .expect("events remain"),
        };
        emitted[i] = true;
        order.push(i);
        for &k in &succs[i] {
            waiting[k] = waiting[k].saturating_sub(1);
            if waiting[k] == 0 && !emitted[k] {
                ready.push(key(k));
            }
        }
    }
    let mut slots: Vec<Option<LogEvent>> = events.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each event once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, time: i64, message: &str) -> TagRecord {
        TagRecord {
            name: name.into(),
            commit: "c".repeat(40),
            tagger: Some("t <t@x>".into()),
            time: Some(time),
            message: message.into(),
            signer: None,
            signature_error: None,
        }
    }

    fn order(events: &[LogEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                e.tag
                    .trim_start_matches("release=1.0")
                    .trim_start_matches('=')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_trigger_is_listed_after_the_unblock_of_the_same_second_that_allowed_it() {
        let records = [
            rec("release=1.0=deploy_serving_prod_k8s.1", 100, "trigger"),
            rec(
                "release=1.0=require-manual-unblock=unblocked",
                100,
                "unblock",
            ),
            rec("release=1.0", 100, "train 1.0"),
        ];
        assert_eq!(
            order(&log_events(&records)),
            [
                "",
                "require-manual-unblock=unblocked",
                "deploy_serving_prod_k8s.1"
            ]
        );
    }

    #[test]
    fn same_second_events_follow_their_causes() {
        let g = Sdd::parse("t.yaml", "z: []\nv: {needs: [z], virtual: true}\na: [v]\n").unwrap();
        let graphs = BTreeMap::from([("1.0".to_string(), g)]);
        let records = [
            rec("release=1.0", 100, "train 1.0"),
            // `a` needs `z` (through a virtual step); its name sorts first.
            rec(
                "release=1.0=a.1",
                100,
                "trigger\n\nreason: dependencies done",
            ),
            rec(
                "release=1.0=z.1",
                100,
                "trigger\n\nreason: dependencies done",
            ),
            rec("release=1.0=z.1=success", 100, "ok"),
            // A started reported by a clock one second behind the trigger's.
            rec("release=1.0=a.1=started", 99, "s"),
            rec("release=1.0=a.1=failure", 100, "f"),
            // The CI's re-run after the first outcome, in the same second.
            rec("release=1.0=a.1=rerun.1=success", 100, "r"),
            rec("release=1.0=a.1=rerun.1=started", 100, "r"),
            // A retry after the failure it retries.
            rec(
                "release=1.0=a.2",
                100,
                "trigger\n\nreason: automatic retry after attempt 1 failed",
            ),
        ];
        let want = [
            "",
            "z.1",
            "z.1=success",
            "a.1",
            "a.1=started",
            "a.1=failure",
            "a.2",
            "a.1=rerun.1=started",
            "a.1=rerun.1=success",
        ];
        assert_eq!(order(&log_events_causal(&records, &graphs)), want);
        // Without the graph, the dependency is not known: `a.1` (a name before `z`)
        // comes first; every other cause still orders.
        let got = order(&log_events(&records));
        assert_eq!(got[..2], ["", "a.1"]);
        for (before, after) in [
            ("a.1", "a.1=started"),
            ("a.1=started", "a.1=failure"),
            ("a.1=failure", "a.2"),
            ("a.1=failure", "a.1=rerun.1=started"),
            ("a.1=rerun.1=started", "a.1=rerun.1=success"),
            ("z.1", "z.1=success"),
        ] {
            let at = |t: &str| got.iter().position(|g| g == t).unwrap();
            assert!(at(before) < at(after), "{before} before {after}: {got:?}");
        }
    }
    #[test]
    fn a_claim_is_listed_after_what_allowed_it_and_before_its_trigger() {
        let g = Sdd::parse(
            "t.yaml",
            "b: []\nd: {needs: [b], environment: staging, deploy_tag: staging-k8s}\n",
        )
        .unwrap();
        let graphs = BTreeMap::from([("1.0".to_string(), g)]);
        let records = [
            // All in one second; names that would sort the other way round.
            rec(
                "release=1.0=d.1",
                100,
                "trigger\n\nreason: dependencies done",
            ),
            rec(
                "env=staging.1",
                100,
                "claim `staging` turn 1 for train 1.0\n\ntrain: 1.0\nstep: d\n",
            ),
            rec("release=1.0=b.1=success", 100, "ok"),
            rec("release=1.0=b.1", 100, "trigger"),
            rec("release=1.0", 100, "train 1.0"),
            // A claim naming no train is not an event of any train.
            rec("env=staging.2", 100, "junk"),
            // Nor is a tag that is no claim.
            rec("staging-k8s", 100, "train: 1.0"),
        ];
        let events = log_events_causal(&records, &graphs);
        assert_eq!(
            order(&events),
            ["", "b.1", "b.1=success", "env=staging.1", "d.1"]
        );
        let c = &events[3];
        assert_eq!(
            (c.event.as_str(), c.step.as_deref()),
            ("claimed", Some("d"))
        );
        assert_eq!(c.train, "1.0");
    }
}

/// A train that could not be planned, and why (`status --json`'s `errors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrainError {
    /// The train id, `N.P`.
    pub train: String,
    /// The message.
    pub error: String,
}

/// What `status --json` prints for the newest trains, and what `konductor serve`'s
/// `/api/trains` answers: the same value, from the same code.
#[derive(Debug, Clone, Serialize)]
pub struct StatusList {
    /// The trains planned, newest first.
    pub trains: Vec<TrainReport>,
    /// The trains that could not be planned.
    pub errors: Vec<TrainError>,
    /// Train tags that are not trains, newest first.
    pub ignored: Vec<crate::ops::IgnoredTrain>,
    /// The environments' facts the trains were planned with (not part of `status --json`).
    #[serde(skip)]
    pub environments: crate::model::env::Environments,
    /// The train numbers discovered (not part of `status --json`).
    #[serde(skip)]
    pub followed: std::collections::BTreeSet<crate::model::tag::TrainId>,
}

/// Discover the newest `horizon` train numbers and plan each, as `konductor status` does.
pub fn status_list(
    store: &crate::git::store::Store,
    horizon: u32,
    now: i64,
) -> crate::error::Result<StatusList> {
    let found = crate::ops::discover(store, horizon.max(1), false)?;
    let environments = crate::ops::environments(store, &found.trains, None, now)?;
    let mut trains = Vec::new();
    let mut errors = Vec::new();
    for &t in found.trains.iter().rev() {
        match crate::ops::plan_train_in(store, t, None, None, now, &environments) {
            Ok(p) => trains.push(TrainReport::new(&p)),
            Err(e) => errors.push(TrainError {
                train: t.to_string(),
                error: e.to_string(),
            }),
        }
    }
    Ok(StatusList {
        trains,
        errors,
        ignored: found.ignored,
        environments,
        followed: found.trains,
    })
}
