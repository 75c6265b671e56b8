//! Status reports: what `status`, `log` and the board show. The JSON form is stable and
//! documented in `docs/status-json.md`.

use serde::Serialize;

use crate::ops::Planned;
use crate::plan::{StepKind, StepState, TrainState};
use crate::tag::JobState;
use crate::time::rfc3339;
use crate::train::{message_field, Event, Observed, TagRecord};

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
    /// Outcome so far: `triggered`, `started`, `success`, `failure` or `timeout`.
    pub state: String,
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
    /// `pending|triggered|started|success|failure|blocked|skipped`.
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
            let started = a.states.get(&JobState::Started);
            let end = [JobState::Timeout, JobState::Failure, JobState::Success]
                .into_iter()
                .find_map(|s| a.states.get(&s));
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
    /// `skipped`, `cancelled`, or `malformed`.
    pub event: String,
    /// The step, if any.
    pub step: Option<String>,
    /// The attempt, if any.
    pub attempt: Option<u32>,
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

/// The audit log of tags, in time order (ties by tag name).
pub fn log_events(records: &[TagRecord]) -> Vec<LogEvent> {
    use crate::tag::{StepVerb, Tag};
    let mut out: Vec<LogEvent> = records
        .iter()
        .filter_map(|r| {
            let (train, event, step, attempt) = match Tag::parse_any(&r.name) {
                Ok(Some(Tag::Train(t))) => (t.to_string(), "opened".to_string(), None, None),
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
                    }
                    .into(),
                    Some(s),
                    None,
                ),
                Ok(Some(Tag::Cancelled(t))) => (t.to_string(), "cancelled".into(), None, None),
                Ok(None) => return None,
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
            let secs = crate::time::clamp(r.time.unwrap_or(0));
            Some(LogEvent {
                at: rfc3339(secs),
                secs,
                train,
                event,
                step,
                attempt,
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
    out.sort_by(|a, b| {
        a.secs
            .cmp(&b.secs)
            .then_with(|| order(&a.event).cmp(&order(&b.event)))
            .then_with(|| a.tag.cmp(&b.tag))
    });
    out
}

fn order(event: &str) -> u8 {
    match event {
        "opened" => 0,
        "triggered" => 1,
        "started" => 2,
        _ => 3,
    }
}
