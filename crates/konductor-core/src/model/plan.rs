//! The planner: a pure function from (graph, target, observed tags, clock) to actions.
//!
//! It never touches git. Two planners that see the same tags produce the same tag names,
//! because a job id is the attempt number: that, plus create-only pushes, is what makes
//! racing ticks safe (see `docs/tag-protocol.md`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::env::{Claim, EnvFacts, EnvPhase, Environments, MAX_CLAIM};
use crate::model::sdd::{format_duration, Sdd, DEFAULT_TRIGGER_RETRIES};
use crate::model::tag::{JobState, StepVerb, Tag, TrainId, Trigger, MAX_JOB};
use crate::model::train::{Attempt, Event, Observed, SHOWN_PER_KIND};

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
    /// Claim the next turn of an environment for this train's deploy step
    /// (`env=<environment>.<turn>`). The trigger planned after it is pushed only if this
    /// push created the claim.
    Claim {
        /// The deploy step.
        step: String,
        /// The environment.
        environment: String,
        /// The turn.
        turn: u32,
    },
    /// Record that a deploy step is superseded: a newer train has its environment.
    Supersede {
        /// Step.
        step: String,
        /// Why, for the tag message.
        reason: String,
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
            Action::Supersede { step, .. } => {
                Some(Tag::Step(train, step.clone(), StepVerb::Superseded))
            }
            Action::Evaluate { .. } | Action::Claim { .. } => None,
        }
    }

    /// The name of the tag this action creates, if any: a `release=` tag, or for
    /// [`Action::Claim`] the claim tag `env=<environment>.<turn>`.
    pub fn tag_name(&self, train: TrainId) -> Option<String> {
        match self {
            Action::Claim {
                environment, turn, ..
            } => Some(
                Claim {
                    env: environment.clone(),
                    turn: *turn,
                }
                .to_string(),
            ),
            _ => self.tag(train).map(|t| t.to_string()),
        }
    }

    /// The tag message for this action.
    pub fn message(&self) -> String {
        match self {
            Action::Trigger { step, job, reason } => format!(
                "trigger `{step}` attempt {job}\n\nreason: {}\n",
                reason.describe()
            ),
            Action::Timeout { reason, .. }
            | Action::Skip { reason, .. }
            | Action::Supersede { reason, .. } => {
                format!("{reason}\n")
            }
            Action::Evaluate { step } => format!("evaluate `{step}`"),
            Action::Claim {
                step,
                environment,
                turn,
            } => format!("claim `{environment}` turn {turn} for `{step}`\n\nstep: {step}\n"),
        }
    }

    /// The tag message for this action of `train` (the claim names the train it is for).
    pub fn message_for(&self, train: TrainId) -> String {
        match self {
            Action::Claim {
                step,
                environment,
                turn,
            } => Claim {
                env: environment.clone(),
                turn: *turn,
            }
            .message(train, step),
            _ => self.message(),
        }
    }

    /// The step this action is about.
    pub fn step(&self) -> &str {
        match self {
            Action::Trigger { step, .. }
            | Action::Timeout { step, .. }
            | Action::Skip { step, .. }
            | Action::Supersede { step, .. }
            | Action::Claim { step, .. }
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
    /// An environment's deploy step that will never run because a newer train has the
    /// environment, or a step that needs such a step.
    Superseded,
    /// A deploy step ready to go while its environment is busy, or while a newer train is
    /// about to take it. Not recorded: the next tick decides again.
    Waiting,
    /// A deploy step ready to go while its environment is frozen (by hand or in a
    /// scheduled window) or pinned by a rollback. Not recorded: the next tick decides
    /// again.
    Frozen,
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
            StepState::Superseded => "superseded",
            StepState::Waiting => "waiting",
            StepState::Frozen => "frozen",
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
    /// A newer train took an environment this train needed: its deploy step there is
    /// superseded, and nothing else is moving.
    Superseded,
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
            TrainState::Superseded => "superseded",
        }
    }

    /// Whether ticks have nothing more to do for it (until someone acts).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrainState::Succeeded | TrainState::Cancelled | TrainState::Superseded
        )
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
    /// When a `frozen` step's freeze ends (RFC 3339), when it has an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
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
    /// The facts about other trains in each environment, as every reader computes them
    /// (`crate::ops::environments`). `None`: environments are not tracked (`simulate`,
    /// and what-if plans); deploy steps are then triggered like any job.
    pub environments: Option<Environments>,
}

/// What planning one step gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepPlan {
    /// The step's view.
    pub view: StepView,
    /// The failed step upstream that blocks it, if any.
    pub failed_upstream: Option<String>,
    /// What to do for it now.
    pub actions: Vec<Action>,
    /// What was ignored about it (the premature-tag warning is left to the caller, which
    /// caps them per train).
    pub warnings: Vec<String>,
    /// Whether tags of it were ignored because its dependencies are not done.
    pub premature: bool,
}

/// Plan one step from its dependencies' views (each with the failed step that blocks it,
/// if any), in `needs` order. The whole planner is this, over the target's closure in
/// topological order; `simulate` calls it incrementally.
pub(crate) fn plan_step(
    step: &crate::model::sdd::Step,
    target: &str,
    deps: &[(&StepView, Option<&String>)],
    obs: &Observed,
    ctx: &PlanContext,
    later_envs: &[&str],
) -> StepPlan {
    let mut out = StepPlan {
        view: StepView {
            name: step.name.clone(),
            kind: StepKind::Job,
            state: StepState::Pending,
            attempt: 0,
            reason: None,
            until: None,
        },
        failed_upstream: None,
        actions: Vec::new(),
        warnings: Vec::new(),
        premature: false,
    };
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
    let deps_done = deps.iter().all(|(d, _)| d.state.is_done());
    let failed_dep = deps.iter().find_map(|(d, up)| {
        if d.state == StepState::Failure {
            Some(d.name.clone())
        } else {
            up.cloned()
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
        until: None,
    };
    if !deps_done {
        if let Some(f) = failed_dep {
            view.state = StepState::Blocked;
            view.reason = Some(format!("upstream `{f}` failed"));
            out.failed_upstream = Some(f);
        } else if let Some((d, _)) = deps.iter().find(|(d, _)| d.state == StepState::Superseded) {
            view.state = StepState::Superseded;
            view.reason = Some(match d.reason.as_deref() {
                Some(r) if r.starts_with("upstream `") => r.to_string(),
                _ => format!("upstream `{}` superseded", d.name),
            });
        }
        let premature = attempts.is_some_and(|a| !a.is_empty())
            || obs.unblocked.contains_key(name)
            || obs.skipped.contains_key(name);
        if premature {
            out.premature = true;
            view.attempt = 0;
        }
        out.view = view;
        return out;
    }
    match kind {
        StepKind::Target | StepKind::Virtual => view.state = StepState::Success,
        StepKind::Manual => {
            let unblock = obs.unblocked.get(name).filter(|ev| {
                let ok = approved(&step.approvers, ev);
                if !ok {
                    out.warnings.push(format!(
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
            } else if let Some(a) = condition(step, ctx, &mut out.actions) {
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
                if obs.superseded.contains_key(name) {
                    out.warnings.push(format!(
                        "`{name}` was triggered and also recorded superseded; its attempts count"
                    ));
                }
                let next = next_job(obs, name);
                job_state(step, atts, next, ctx, &mut view, &mut out.actions);
            } else if let Some(ev) = obs.superseded.get(name) {
                view.state = StepState::Superseded;
                view.reason = Some(ev.message.lines().next().unwrap_or("").to_string());
            } else if let Some(a) = condition(step, ctx, &mut out.actions) {
                view.state = a.0;
                view.reason = a.1;
            } else if let (Some(env), Some(envs)) = (&step.environment, &ctx.environments) {
                let none = EnvFacts::default();
                let facts = envs.get(env).unwrap_or(&none);
                let later: Vec<(&str, &EnvFacts)> = later_envs
                    .iter()
                    .map(|e| (*e, envs.get(*e).unwrap_or(&none)))
                    .collect();
                let mut decision = decide(obs.train, env, facts, &later);
                // A freeze or a pin holds a deploy that would be triggered (or waits for
                // its turn); one already claimed or in flight finishes.
                if matches!(decision, EnvDecision::Go { .. } | EnvDecision::Wait(_)) {
                    if let Some((why, until)) =
                        crate::model::freeze::hold(env, &facts.controls, &step.freeze, ctx.now)
                    {
                        decision = EnvDecision::Frozen { why, until };
                    }
                }
                match decision {
                    EnvDecision::Go { turn } => match next_job(obs, name) {
                        Some(job) => {
                            view.reason = Some(format!("claiming `{env}` (turn {turn})"));
                            out.actions.push(Action::Claim {
                                step: name.to_string(),
                                environment: env.clone(),
                                turn,
                            });
                            out.actions.push(Action::Trigger {
                                step: name.to_string(),
                                job,
                                reason: TriggerReason::Ready,
                            });
                        }
                        None => no_job_left(&mut view),
                    },
                    EnvDecision::Holds => match next_job(obs, name) {
                        Some(job) => out.actions.push(Action::Trigger {
                            step: name.to_string(),
                            job,
                            reason: TriggerReason::Ready,
                        }),
                        None => no_job_left(&mut view),
                    },
                    EnvDecision::Wait(why) => {
                        view.state = StepState::Waiting;
                        view.reason = Some(why);
                    }
                    EnvDecision::Frozen { why, until } => {
                        view.state = StepState::Frozen;
                        view.reason = Some(why);
                        view.until = until.map(crate::model::time::rfc3339);
                    }
                    EnvDecision::Supersede(why) => {
                        view.state = StepState::Superseded;
                        view.reason = Some(why.clone());
                        out.actions.push(Action::Supersede {
                            step: name.to_string(),
                            reason: why,
                        });
                    }
                    EnvDecision::NoTurnLeft => {
                        view.state = StepState::Failure;
                        view.reason = Some(format!(
                            "no claim number left: a claim of `{env}` uses {MAX_CLAIM}, the largest the tag protocol allows"
                        ));
                    }
                }
            } else {
                match next_job(obs, name) {
                    Some(job) => out.actions.push(Action::Trigger {
                        step: name.to_string(),
                        job,
                        reason: TriggerReason::Ready,
                    }),
                    None => no_job_left(&mut view),
                }
            }
        }
    }
    out.view = view;
    out
}

/// The train's state from its step views and the actions planned.
pub(crate) fn train_state(
    target: &str,
    obs: &Observed,
    steps: &[StepView],
    has_actions: bool,
) -> TrainState {
    let target_done = steps.iter().any(|s| s.name == target && s.state.is_done());
    if obs.cancelled.is_some() {
        TrainState::Cancelled
    } else if target_done {
        TrainState::Succeeded
    } else if has_actions
        || steps
            .iter()
            .any(|s| matches!(s.state, StepState::Triggered | StepState::Started))
    {
        TrainState::Running
    } else if steps.iter().any(|s| s.state == StepState::Failure) {
        TrainState::Failed
    } else if steps.iter().any(|s| s.state == StepState::Superseded) {
        TrainState::Superseded
    } else if steps
        .iter()
        .any(|s| s.kind == StepKind::Manual && s.state == StepState::Blocked)
    {
        TrainState::Blocked
    } else {
        TrainState::Running
    }
}

/// Plan one train toward `target`.
pub fn plan(sdd: &Sdd, target: &str, obs: &Observed, ctx: &PlanContext) -> Plan {
    let mut views: BTreeMap<&str, StepView> = BTreeMap::new();
    let mut actions = Vec::new();
    let mut warnings = obs.warnings.clone();
    // step → the failed step that blocks it
    let mut failed_upstream: BTreeMap<&str, String> = BTreeMap::new();
    let closure = sdd.closure(target);
    let mut premature_steps = 0usize;
    for step in &closure {
        let deps: Vec<(&StepView, Option<&String>)> = step
            .needs
            .iter()
            .map(|d| (&views[d.as_str()], failed_upstream.get(d.as_str())))
            .collect();
        let later = later_environments(sdd, &closure, step);
        let sp = plan_step(step, target, &deps, obs, ctx, &later);
        if sp.premature {
            premature_steps += 1;
            if premature_steps <= SHOWN_PER_KIND {
                warnings.push(format!(
                    "ignored tags of `{}`: its dependencies have not all succeeded",
                    step.name
                ));
            }
        }
        warnings.extend(sp.warnings);
        actions.extend(sp.actions);
        if let Some(f) = sp.failed_upstream {
            failed_upstream.insert(&step.name, f);
        }
        views.insert(&step.name, sp.view);
    }
    if premature_steps > SHOWN_PER_KIND {
        warnings.push(format!(
            "… and the tags of {} more steps whose dependencies have not all succeeded",
            premature_steps - SHOWN_PER_KIND
        ));
    }
    let steps: Vec<StepView> = closure
        .iter()
        .map(|s| {
            views
                .remove(s.name.as_str())
                .expect("every closure step has a view")
        })
        .collect();
    // Recording a superseded step changes nothing: it does not keep a train running.
    let moving = actions
        .iter()
        .any(|a| !matches!(a, Action::Supersede { .. }));
    let state = train_state(target, obs, &steps, moving);
    if state == TrainState::Cancelled {
        actions.clear();
    }
    Plan {
        target: target.to_string(),
        actions,
        steps,
        state,
        warnings,
    }
}

/// The environments whose deploy steps (in the closure) depend on `step`, when `step` is
/// an environment's deploy step: the environments a hotfix still has ahead of it.
fn later_environments<'a>(
    sdd: &'a Sdd,
    closure: &[&'a crate::model::sdd::Step],
    step: &crate::model::sdd::Step,
) -> Vec<&'a str> {
    if step.environment.is_none() {
        return vec![];
    }
    closure
        .iter()
        .filter(|s| s.name != step.name && sdd.depends_on(&s.name, &step.name))
        .filter_map(|s| s.environment.as_deref())
        .collect()
}

/// What a train ready to deploy to an environment does there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvDecision {
    /// Claim `turn` and trigger.
    Go {
        /// The turn to claim.
        turn: u32,
    },
    /// The train holds the newest claim already (a tick claimed and stopped before the
    /// trigger): trigger.
    Holds,
    /// Wait, for this reason.
    Wait(String),
    /// Never deploy here: record it superseded, for this reason.
    Supersede(String),
    /// The next claim number would pass [`MAX_CLAIM`].
    NoTurnLeft,
    /// Frozen or pinned (see [`crate::model::freeze::hold`]): not now, for this reason,
    /// until then (seconds) when the end is known.
    Frozen {
        /// Why.
        why: String,
        /// The end of the freeze.
        until: Option<i64>,
    },
}

/// The rules of an environment for a train `me` whose deploy step there is ready (its
/// dependencies done, never triggered), from the facts every reader computes alike.
/// `later` are the environments the train deploys to after this one, with their facts.
///
/// 1. **Holds**: `me` holds the newest claim: trigger (the claim was the decision).
/// 2. **Forward only**: a newer train claimed the environment (it deployed or is
///    deploying): superseded. A hotfix (`N.P`, `P ≥ 1`) is superseded only when newer
///    trains also claimed every later environment of its path: a hotfix of the train in
///    production may pass a newer train that is only on staging.
/// 3. **One at a time**: the holder's deploy is in flight: wait.
/// 4. **Newest wins**: a newer train is ready too: wait (it goes, and this one is
///    superseded once it has claimed).
/// 5. Otherwise claim the next turn.
pub fn decide(
    me: TrainId,
    env: &str,
    facts: &EnvFacts,
    later: &[(&str, &EnvFacts)],
) -> EnvDecision {
    if facts.holder == Some(me) {
        return EnvDecision::Holds;
    }
    let newer = |f: &EnvFacts| f.high_water.filter(|h| *h > me);
    if let Some(h) = newer(facts) {
        let hotfix_passes = me.patch > 0 && later.iter().any(|(_, f)| newer(f).is_none());
        if !hotfix_passes {
            let how = match facts.trains.get(&h) {
                Some(EnvPhase::Deployed) => "deployed to",
                _ => "is deploying to",
            };
            return EnvDecision::Supersede(format!("superseded: {h} {how} `{env}`"));
        }
    }
    if let Some(d) = facts.deploying.filter(|d| *d != me) {
        return EnvDecision::Wait(format!("waiting for {env}: {d} is deploying"));
    }
    if let Some(w) = facts.newest_ready(me).filter(|w| *w > me) {
        return EnvDecision::Wait(format!("waiting for {env}: {w} is newer and goes first"));
    }
    let turn = facts.next_turn.max(1);
    if turn > MAX_CLAIM {
        return EnvDecision::NoTurnLeft;
    }
    EnvDecision::Go { turn }
}

/// Where a train stands with each environment of its graph (`target`'s closure), from its
/// own tags: what every reader feeds into [`crate::model::env::combine`]. The deploy step
/// is planned as if environments were not tracked: a trigger that plan would make is a
/// train ready to deploy. Undecided conditions count as changed. A cancelled train stands
/// nowhere.
pub fn standing(
    sdd: &Sdd,
    target: &str,
    obs: &Observed,
    now: i64,
) -> BTreeMap<String, crate::model::env::SeenTrain> {
    use crate::model::env::SeenTrain;
    let mut out = BTreeMap::new();
    if obs.cancelled.is_some() {
        return out;
    }
    let conditions = all_changed(sdd, "");
    let ctx = PlanContext {
        now,
        conditions,
        environments: None,
    };
    let p = plan(sdd, target, obs, &ctx);
    for (env, step) in sdd.environments() {
        let Some(v) = p.step(&step.name) else {
            continue;
        };
        let tried = obs.attempts.get(&step.name).is_some_and(|a| !a.is_empty());
        let triggers = |ready: bool| {
            p.actions.iter().any(|a| {
                matches!(a, Action::Trigger { step: s, reason, .. }
                    if *s == step.name && (*reason == TriggerReason::Ready) == ready)
            })
        };
        let phase = if tried {
            match v.state {
                StepState::Success => Some(EnvPhase::Deployed),
                StepState::Triggered | StepState::Started => Some(EnvPhase::Deploying),
                StepState::Failure if triggers(false) => Some(EnvPhase::Deploying),
                _ => None,
            }
        } else if !obs.superseded.contains_key(&step.name) && triggers(true) {
            Some(EnvPhase::Ready)
        } else {
            None
        };
        out.insert(env.to_string(), SeenTrain { phase, tried });
    }
    out
}

/// The `if_changed` decision for a step whose dependencies are done and that has no
/// attempts yet. `None` means the step should proceed as usual.
fn condition(
    step: &crate::model::sdd::Step,
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
            let why = why.strip_prefix("skipped: ").unwrap_or(why);
            Some((StepState::Pending, Some(format!("skipping: {why}"))))
        }
    }
}

/// The job id a new attempt of `step` takes: one more than any id a tag of the step uses,
/// trusted or not. `None` when that would pass [`MAX_JOB`], the largest the grammar reads.
pub fn next_job(obs: &Observed, step: &str) -> Option<u32> {
    let latest = obs
        .attempts
        .get(step)
        .and_then(|a| a.keys().next_back().copied())
        .unwrap_or(0);
    latest
        .max(obs.taken.get(step).copied().unwrap_or(0))
        .checked_add(1)
        .filter(|&j| j <= MAX_JOB)
}

fn no_job_left(view: &mut StepView) {
    view.state = StepState::Failure;
    view.reason = Some(format!(
        "no job id left: a tag of this step uses {MAX_JOB}, the largest the tag protocol allows"
    ));
}

fn job_state(
    step: &crate::model::sdd::Step,
    atts: &BTreeMap<u32, Attempt>,
    next: Option<u32>,
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
            let lost = u32::try_from(
                atts.iter()
                    .rev()
                    .skip(1)
                    .take_while(|(_, a)| a.never_started())
                    .count(),
            )
            .unwrap_or(u32::MAX);
            let at = last.triggered.as_ref().map_or(0, |e| e.at);
            if at > 0 && waited_past(ctx.now, at, step.trigger_timeout) {
                if lost < DEFAULT_TRIGGER_RETRIES {
                    match next {
                        Some(job) => actions.push(Action::Trigger {
                            step: name.to_string(),
                            job,
                            reason: TriggerReason::LostTrigger { after: latest },
                        }),
                        None => no_job_left(view),
                    }
                } else {
                    // Give up: a failure, so the train says so and `retry` can go again.
                    view.state = StepState::Failure;
                    view.reason = Some(format!(
                        "no CI picked up {} triggers in a row; check the job's tag filter, then `konductor retry`",
                        lost.saturating_add(1)
                    ));
                }
            }
        }
        Some(JobState::Started) => {
            view.state = StepState::Started;
            let started = &last.current()[&JobState::Started];
            if let Some(limit) = step.timeout {
                if started.at > 0 && waited_past(ctx.now, started.at, limit) {
                    actions.push(Action::Timeout {
                        step: name.to_string(),
                        job: latest,
                        rerun: last.run(),
                        reason: format!(
                            "timeout: started at {} and reported nothing within {}",
                            crate::model::time::rfc3339(started.at),
                            format_duration(limit)
                        ),
                    });
                }
            }
        }
        Some(_) => {
            let failures =
                u32::try_from(atts.values().filter(|a| a.failed()).count()).unwrap_or(u32::MAX);
            if failures <= step.retries && next.is_none() {
                no_job_left(view);
            } else if failures <= step.retries {
                view.state = StepState::Failure;
                view.reason = Some(format!(
                    "attempt {latest} failed; retry {failures} of {}",
                    step.retries
                ));
                if let Some(job) = next {
                    actions.push(Action::Trigger {
                        step: name.to_string(),
                        job,
                        reason: TriggerReason::Retry { after: latest },
                    });
                }
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

/// Whether more than `limit` passed from `since` to `now`. Never wraps: times are clamped
/// to [`crate::model::time::MAX_TIME`] when read and durations to [`crate::model::sdd::MAX_DURATION`] when
/// parsed, and the arithmetic saturates besides.
fn waited_past(now: i64, since: i64, limit: std::time::Duration) -> bool {
    now.saturating_sub(since) > i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)
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

/// Every `if_changed` condition of `sdd` counted as changed, with `why`: the safe default
/// where nobody has compared the trees (simulation, other trains' standing).
pub fn all_changed(sdd: &Sdd, why: &str) -> BTreeMap<String, (bool, String)> {
    sdd.steps()
        .iter()
        .filter(|s| !s.if_changed.is_empty())
        .map(|s| (s.name.clone(), (true, why.to_string())))
        .collect()
}

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod tests;
