//! The planner: a pure function from (graph, target, observed tags, clock) to actions.
//!
//! It never touches git. Two planners that see the same tags produce the same tag names,
//! because a job id is the attempt number: that, plus create-only pushes, is what makes
//! racing ticks safe (see `docs/tag-protocol.md`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sdd::{format_duration, Sdd, DEFAULT_TRIGGER_RETRIES};
use crate::tag::{JobState, StepVerb, Tag, TrainId, Trigger};
use crate::train::{Attempt, Event, Observed};

/// Why a trigger is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TriggerReason {
    /// All dependencies are done.
    Ready,
    /// An earlier attempt failed and `retries` allows another.
    Retry {
        /// The failed attempt.
        after: u32,
    },
    /// No CI picked up the earlier trigger within `trigger_timeout`.
    LostTrigger {
        /// The attempt that was never started.
        after: u32,
    },
    /// `konductor retry` asked for it.
    Manual {
        /// The failed attempt.
        after: u32,
    },
}

impl TriggerReason {
    /// One line for humans and tag messages.
    pub fn describe(&self) -> String {
        match self {
            TriggerReason::Ready => "dependencies done".into(),
            TriggerReason::Retry { after } => {
                format!("automatic retry after attempt {after} failed")
            }
            TriggerReason::LostTrigger { after } => {
                format!("re-trigger: attempt {after} was never started")
            }
            TriggerReason::Manual { after } => format!("manual retry after attempt {after}"),
        }
    }
}

/// One thing a tick should do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Create a trigger tag.
    Trigger {
        /// Step and attempt.
        step: String,
        /// Job id (attempt number).
        job: u32,
        /// Why.
        reason: TriggerReason,
    },
    /// Record that a started job ran past its `timeout`.
    Timeout {
        /// Step.
        step: String,
        /// Job id.
        job: u32,
        /// The run that timed out: 0 for the first, `k` for re-run `k` of the attempt.
        #[serde(default, skip_serializing_if = "is_zero")]
        rerun: u32,
        /// Why, for the tag message.
        reason: String,
    },
    /// Record that a conditional step is skipped.
    Skip {
        /// Step.
        step: String,
        /// Why, for the tag message.
        reason: String,
    },
    /// The caller must evaluate this step's `if_changed` condition and plan again.
    Evaluate {
        /// Step.
        step: String,
    },
}

impl Action {
    /// The tag this action creates, if any.
    pub fn tag(&self, train: TrainId) -> Option<Tag> {
        match self {
            Action::Trigger { step, job, .. } => {
                Some(Tag::Trigger(Trigger::new(train, step, *job)))
            }
            Action::Timeout {
                step, job, rerun, ..
            } => Some(Trigger::new(train, step, *job).run_state_tag(*rerun, JobState::Timeout)),
            Action::Skip { step, .. } => Some(Tag::Step(train, step.clone(), StepVerb::Skipped)),
            Action::Evaluate { .. } => None,
        }
    }

    /// The tag message for this action.
    pub fn message(&self) -> String {
        match self {
            Action::Trigger { step, job, reason } => format!(
                "trigger `{step}` attempt {job}\n\nreason: {}\n",
                reason.describe()
            ),
            Action::Timeout { reason, .. } | Action::Skip { reason, .. } => {
                format!("{reason}\n")
            }
            Action::Evaluate { step } => format!("evaluate `{step}`"),
        }
    }

    /// The step this action is about.
    pub fn step(&self) -> &str {
        match self {
            Action::Trigger { step, .. }
            | Action::Timeout { step, .. }
            | Action::Skip { step, .. }
            | Action::Evaluate { step } => step,
        }
    }
}

/// The state of one step, as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Dependencies not done yet.
    Pending,
    /// Trigger tag created, job not started.
    Triggered,
    /// Job started.
    Started,
    /// Done (job success, virtual step reached, or gate unblocked).
    Success,
    /// Failed with no automatic retry left.
    Failure,
    /// Waiting for a manual unblock, or downstream of a failure.
    Blocked,
    /// Condition not met: counts as done.
    Skipped,
}

impl StepState {
    /// Whether dependents may go on.
    pub fn is_done(self) -> bool {
        matches!(self, StepState::Success | StepState::Skipped)
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Triggered => "triggered",
            StepState::Started => "started",
            StepState::Success => "success",
            StepState::Failure => "failure",
            StepState::Blocked => "blocked",
            StepState::Skipped => "skipped",
        }
    }
}

/// What kind of step this is for the train's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Triggered as a CI job.
    Job,
    /// Never triggered; done when its dependencies are.
    Virtual,
    /// A manual gate.
    Manual,
    /// The train's target.
    Target,
}

/// The overall state of a train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainState {
    /// Jobs are queued or running, or something can be triggered.
    Running,
    /// The target is reached.
    Succeeded,
    /// A failure blocks the target and nothing else is moving.
    Failed,
    /// Only a manual gate stands between the train and its target.
    Blocked,
    /// Cancelled with `konductor cancel`.
    Cancelled,
}

impl TrainState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrainState::Running => "running",
            TrainState::Succeeded => "succeeded",
            TrainState::Failed => "failed",
            TrainState::Blocked => "blocked",
            TrainState::Cancelled => "cancelled",
        }
    }

    /// Whether ticks have nothing more to do for it (until someone acts).
    pub fn is_finished(self) -> bool {
        matches!(self, TrainState::Succeeded | TrainState::Cancelled)
    }
}

/// The planner's view of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// Step name.
    pub name: String,
    /// Kind.
    pub kind: StepKind,
    /// Current state.
    pub state: StepState,
    /// The attempt that counts (0 when never triggered).
    pub attempt: u32,
    /// Why the step is in this state, when not obvious.
    pub reason: Option<String>,
}

/// The planner's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The target planned for.
    pub target: String,
    /// What to do now, in graph order.
    pub actions: Vec<Action>,
    /// Every step the target needs, in graph order.
    pub steps: Vec<StepView>,
    /// Overall state.
    pub state: TrainState,
    /// Observed tags the planner refused to trust.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The view of one step.
    pub fn step(&self, name: &str) -> Option<&StepView> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// Inputs besides the graph and the tags.
#[derive(Debug, Clone, Default)]
pub struct PlanContext {
    /// Now, seconds since the epoch.
    pub now: i64,
    /// Evaluated `if_changed` conditions: step → (changed?, explanation).
    pub conditions: BTreeMap<String, (bool, String)>,
}

/// Plan one train toward `target`.
pub fn plan(sdd: &Sdd, target: &str, obs: &Observed, ctx: &PlanContext) -> Plan {
    let mut views: BTreeMap<&str, StepView> = BTreeMap::new();
    let mut actions = Vec::new();
    let mut warnings = obs.warnings.clone();
    // step → the failed step that blocks it
    let mut failed_upstream: BTreeMap<&str, String> = BTreeMap::new();
    let closure = sdd.closure(target);
    for step in &closure {
        let name = step.name.as_str();
        let kind = if name == target {
            StepKind::Target
        } else if step.is_virtual {
            StepKind::Virtual
        } else if step.manual {
            StepKind::Manual
        } else {
            StepKind::Job
        };
        let deps: Vec<&StepView> = step.needs.iter().map(|d| &views[d.as_str()]).collect();
        let deps_done = deps.iter().all(|d| d.state.is_done());
        let failed_dep = deps.iter().find_map(|d| {
            if d.state == StepState::Failure {
                Some(d.name.clone())
            } else {
                failed_upstream.get(d.name.as_str()).cloned()
            }
        });
        let attempts = obs.attempts.get(name);
        let latest = attempts
            .and_then(|a| a.iter().next_back())
            .map(|(j, _)| *j)
            .unwrap_or(0);
        let mut view = StepView {
            name: name.to_string(),
            kind,
            state: StepState::Pending,
            attempt: latest,
            reason: None,
        };
        if !deps_done {
            if let Some(f) = failed_dep {
                view.state = StepState::Blocked;
                view.reason = Some(format!("upstream `{f}` failed"));
                failed_upstream.insert(name, f);
            }
            let premature = attempts.is_some_and(|a| !a.is_empty())
                || obs.unblocked.contains_key(name)
                || obs.skipped.contains_key(name);
            if premature {
                warnings.push(format!(
                    "ignored tags of `{name}`: its dependencies have not all succeeded"
                ));
                view.attempt = 0;
            }
            views.insert(name, view);
            continue;
        }
        match kind {
            StepKind::Target | StepKind::Virtual => view.state = StepState::Success,
            StepKind::Manual => {
                let unblock = obs.unblocked.get(name).filter(|ev| {
                    let ok = approved(&step.approvers, ev);
                    if !ok {
                        warnings.push(format!(
                            "ignored unblock of `{name}` by {}: not in its approvers ({})",
                            who(ev),
                            step.approvers.join(", ")
                        ));
                    }
                    ok
                });
                if let Some(ev) = unblock {
                    view.state = StepState::Success;
                    view.reason = Some(match ev.field("reason") {
                        Some(r) => format!("unblocked by {}: {r}", who(ev)),
                        None => format!("unblocked by {}", who(ev)),
                    });
                } else if let Some(ev) = obs.skipped.get(name) {
                    view.state = StepState::Skipped;
                    view.reason = Some(ev.message.lines().next().unwrap_or("").to_string());
                } else if let Some(a) = condition(step, ctx, &mut actions) {
                    view.state = a.0;
                    view.reason = a.1;
                } else {
                    view.state = StepState::Blocked;
                    view.reason = Some(match ctx.conditions.get(name) {
                        Some((true, why)) if !why.is_empty() => {
                            format!("waiting for manual unblock ({why})")
                        }
                        _ => "waiting for manual unblock".into(),
                    });
                }
            }
            StepKind::Job => {
                if let Some(ev) = obs.skipped.get(name) {
                    view.state = StepState::Skipped;
                    view.reason = Some(ev.message.lines().next().unwrap_or("").to_string());
                } else if let Some(atts) = attempts.filter(|a| !a.is_empty()) {
                    let next = latest_taken(obs, name);
                    job_state(step, atts, next, ctx, &mut view, &mut actions);
                } else if let Some(a) = condition(step, ctx, &mut actions) {
                    view.state = a.0;
                    view.reason = a.1;
                } else {
                    actions.push(Action::Trigger {
                        step: name.to_string(),
                        job: obs.taken.get(name).map_or(1, |t| t + 1),
                        reason: TriggerReason::Ready,
                    });
                }
            }
        }
        views.insert(name, view);
    }
    let steps: Vec<StepView> = closure
        .iter()
        .map(|s| {
            views
                .remove(s.name.as_str())
                .expect("every closure step has a view")
        })
        .collect();
    let target_done = steps.iter().any(|s| s.name == target && s.state.is_done());
    let state = if obs.cancelled.is_some() {
        actions.clear();
        TrainState::Cancelled
    } else if target_done {
        TrainState::Succeeded
    } else if !actions.is_empty()
        || steps
            .iter()
            .any(|s| matches!(s.state, StepState::Triggered | StepState::Started))
    {
        TrainState::Running
    } else if steps.iter().any(|s| s.state == StepState::Failure) {
        TrainState::Failed
    } else if steps
        .iter()
        .any(|s| s.kind == StepKind::Manual && s.state == StepState::Blocked)
    {
        TrainState::Blocked
    } else {
        TrainState::Running
    };
    Plan {
        target: target.to_string(),
        actions,
        steps,
        state,
        warnings,
    }
}

/// The `if_changed` decision for a step whose dependencies are done and that has no
/// attempts yet. `None` means the step should proceed as usual.
fn condition(
    step: &crate::sdd::Step,
    ctx: &PlanContext,
    actions: &mut Vec<Action>,
) -> Option<(StepState, Option<String>)> {
    if step.if_changed.is_empty() {
        return None;
    }
    match ctx.conditions.get(&step.name) {
        None => {
            actions.push(Action::Evaluate {
                step: step.name.clone(),
            });
            Some((StepState::Pending, Some("evaluating `if_changed`".into())))
        }
        Some((true, _)) => None,
        Some((false, why)) => {
            actions.push(Action::Skip {
                step: step.name.clone(),
                reason: why.clone(),
            });
            // Dependents wait until the skip is recorded.
            Some((StepState::Pending, Some(format!("skipping: {why}"))))
        }
    }
}

/// The job id a new attempt of `step` takes.
fn latest_taken(obs: &Observed, step: &str) -> u32 {
    let latest = obs
        .attempts
        .get(step)
        .and_then(|a| a.keys().next_back().copied())
        .unwrap_or(0);
    latest.max(obs.taken.get(step).copied().unwrap_or(0)) + 1
}

fn job_state(
    step: &crate::sdd::Step,
    atts: &BTreeMap<u32, Attempt>,
    next: u32,
    ctx: &PlanContext,
    view: &mut StepView,
    actions: &mut Vec<Action>,
) {
    let name = step.name.as_str();
    if let Some((job, _)) = atts
        .iter()
        .find(|(_, a)| a.outcome() == Some(JobState::Success))
    {
        view.state = StepState::Success;
        view.attempt = *job;
        return;
    }
    let (&latest, last) = atts.iter().next_back().expect("non-empty attempts");
    view.attempt = latest;
    match last.outcome() {
        None => {
            view.state = StepState::Triggered;
            // Never-started attempts in a row, just before the latest.
            let lost = atts
                .iter()
                .rev()
                .skip(1)
                .take_while(|(_, a)| a.never_started())
                .count() as u32;
            let at = last.triggered.as_ref().map_or(0, |e| e.at);
            let waited = ctx.now - at;
            if at > 0 && waited > step.trigger_timeout.as_secs() as i64 {
                if lost < DEFAULT_TRIGGER_RETRIES {
                    actions.push(Action::Trigger {
                        step: name.to_string(),
                        job: next,
                        reason: TriggerReason::LostTrigger { after: latest },
                    });
                } else {
                    // Give up: a failure, so the train says so and `retry` can go again.
                    view.state = StepState::Failure;
                    view.reason = Some(format!(
                        "no CI picked up {} triggers in a row; check the job's tag filter, then `konductor retry`",
                        lost + 1
                    ));
                }
            }
        }
        Some(JobState::Started) => {
            view.state = StepState::Started;
            let started = &last.current()[&JobState::Started];
            if let Some(limit) = step.timeout {
                if started.at > 0 && ctx.now - started.at > limit.as_secs() as i64 {
                    actions.push(Action::Timeout {
                        step: name.to_string(),
                        job: latest,
                        rerun: last.run(),
                        reason: format!(
                            "timeout: started at {} and reported nothing within {}",
                            crate::time::rfc3339(started.at),
                            format_duration(limit)
                        ),
                    });
                }
            }
        }
        Some(_) => {
            let failures = atts.values().filter(|a| a.failed()).count() as u32;
            if failures <= step.retries {
                view.state = StepState::Failure;
                view.reason = Some(format!(
                    "attempt {latest} failed; retry {failures} of {}",
                    step.retries
                ));
                actions.push(Action::Trigger {
                    step: name.to_string(),
                    job: next,
                    reason: TriggerReason::Retry { after: latest },
                });
            } else {
                view.state = StepState::Failure;
                let how = if last.outcome() == Some(JobState::Timeout) {
                    "timed out"
                } else {
                    "failed"
                };
                view.reason = Some(if step.retries > 0 {
                    format!("attempt {latest} {how}; no retries left")
                } else {
                    format!("attempt {latest} {how}")
                });
            }
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Who did it: the verified signer when signatures are checked, else the `by:` field of
/// the message, else the tagger.
fn who(ev: &Event) -> String {
    ev.signer
        .clone()
        .or_else(|| ev.field("by").map(str::to_string))
        .unwrap_or_else(|| ev.by.clone())
}

/// Whether an unblock came from one of `approvers` (any, if the list is empty). With
/// signature verification on, the verified signer counts, not the self-declared identity.
pub fn approved(approvers: &[String], ev: &Event) -> bool {
    approvers.is_empty() || approvers.iter().any(|a| same_identity(a, &who(ev)))
}

/// `alice@example.com` matches `Alice <alice@example.com>`, and vice versa.
pub fn same_identity(a: &str, b: &str) -> bool {
    fn email(s: &str) -> &str {
        let s = s.trim();
        match (s.rfind('<'), s.ends_with('>')) {
            (Some(i), true) => &s[i + 1..s.len() - 1],
            _ => s,
        }
    }
    a.trim() == b.trim() || email(a).eq_ignore_ascii_case(email(b))
}

#[cfg(test)]
mod tests;
