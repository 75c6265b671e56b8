//! Figures from the tags: trains by state, step durations, waits at gates and
//! environments, and the four DORA metrics of one environment. A pure function of the
//! trains a reader already loaded (their tags, graphs and plans), the committer times of
//! their commits, and the deploy commits under the environment's deploy tag; it never
//! reads git. The definitions are in `docs/operations.md` ("Metrics"), the JSON in
//! `docs/status-json.md`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::plan::{Plan, StepKind, StepState, TrainState};
use crate::model::sdd::Sdd;
use crate::model::tag::{JobState, TrainId};
use crate::model::time::rfc3339;
use crate::model::train::{message_field, Attempt, Event, Observed};

/// The environment whose deploys the DORA figures count when none is named.
pub const DEFAULT_ENV: &str = "production";

/// The window the DORA figures cover when none is given: 30 days.
pub const DEFAULT_WINDOW_SECS: i64 = 30 * 86_400;

/// Upper bounds (seconds, inclusive, as Prometheus' `le`) of the duration histograms:
/// 10 s to 1 week. A last, implicit bucket (`+Inf`) holds everything.
pub const DURATION_BOUNDS: [f64; 14] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0, 7_200.0, 21_600.0, 43_200.0, 86_400.0,
    259_200.0, 604_800.0,
];

/// Every train state, in the order the figures list them.
pub const TRAIN_STATES: [TrainState; 6] = [
    TrainState::Running,
    TrainState::Succeeded,
    TrainState::Failed,
    TrainState::Blocked,
    TrainState::Cancelled,
    TrainState::Superseded,
];

/// One train as the figures read it: what a reader loaded to plan it.
#[derive(Debug, Clone, Copy)]
pub struct TrainInput<'a> {
    /// Its tags (already cut to the steps of its graph).
    pub obs: &'a Observed,
    /// Its graph.
    pub sdd: &'a Sdd,
    /// Its plan.
    pub plan: &'a Plan,
    /// The committer time of the train's commit (seconds since the epoch), when known:
    /// the start of its lead time.
    pub commit_time: Option<i64>,
}

/// One commit under an environment's deploy tag (`git log <deploy_tag>`), as
/// `locomotive publish-manifests` and `konductor rollback` write them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployCommit {
    /// The deploy commit.
    pub commit: String,
    /// Its committer time, seconds since the epoch.
    pub at: i64,
    /// The train its `train:` line names, if any.
    pub train: Option<TrainId>,
    /// Whether its message says `rollback: true`.
    pub rollback: bool,
}

impl DeployCommit {
    /// Read a deploy commit's message (`train: N.P`, `rollback: true`).
    pub fn from_message(commit: &str, at: i64, message: &str) -> DeployCommit {
        DeployCommit {
            commit: commit.to_string(),
            at: crate::model::time::clamp(at),
            train: message_field(message, "train").and_then(|t| t.parse().ok()),
            rollback: message_field(message, "rollback").is_some_and(|v| v == "true"),
        }
    }
}

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsOptions {
    /// The environment the DORA figures are about (`production`).
    pub env: String,
    /// Now, seconds since the epoch.
    pub now: i64,
    /// The window, in seconds back from `now` (positive).
    pub window_secs: i64,
}

/// Cumulative histogram buckets, as Prometheus exposes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Upper bounds in seconds ([`DURATION_BOUNDS`]).
    pub bounds: Vec<f64>,
    /// For each bound, how many samples are at most that long (cumulative).
    pub counts: Vec<u64>,
    /// How many samples in all (the `+Inf` bucket).
    pub count: u64,
    /// The sum of the samples, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// The histogram of `samples` (seconds) over [`DURATION_BOUNDS`].
    pub fn of(samples: impl IntoIterator<Item = i64>) -> Histogram {
        let mut h = Histogram {
            bounds: DURATION_BOUNDS.to_vec(),
            counts: vec![0; DURATION_BOUNDS.len()],
            count: 0,
            sum: 0.0,
        };
        for s in samples {
            let s = s as f64;
            for (c, b) in h.counts.iter_mut().zip(&h.bounds) {
                if s <= *b {
                    *c += 1;
                }
            }
            h.count += 1;
            h.sum += s;
        }
        h
    }
}

/// Count, median, mean and maximum of durations (seconds); `None` without samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// How many samples.
    pub count: u64,
    /// The median, in seconds (the mean of the two middle samples for an even count).
    pub median_secs: Option<f64>,
    /// The mean, in seconds.
    pub mean_secs: Option<f64>,
    /// The longest, in seconds.
    pub max_secs: Option<i64>,
}

impl Summary {
    /// The summary of `samples` (seconds).
    pub fn of(samples: impl IntoIterator<Item = i64>) -> Summary {
        let mut v: Vec<i64> = samples.into_iter().collect();
        v.sort_unstable();
        let n = v.len();
        let median = match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2] as f64),
            _ => Some((v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0),
        };
        Summary {
            count: n as u64,
            median_secs: median,
            mean_secs: (n > 0).then(|| v.iter().map(|&x| x as f64).sum::<f64>() / n as f64),
            max_secs: v.last().copied(),
        }
    }
}

/// One finished run of a step: from its trigger to its final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepDuration {
    /// `N.P`.
    pub train: String,
    /// The step.
    pub step: String,
    /// The attempt (job id).
    pub attempt: u32,
    /// `success`, `failure` or `timeout` (of the run that counts).
    pub outcome: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// Seconds from the trigger to the final state (0 when the tagger times say less).
    pub secs: i64,
}

/// One wait that ended: a manual gate from ready to unblocked, or an environment's deploy
/// step from ready to triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wait {
    /// `N.P`.
    pub train: String,
    /// The gate, or the deploy step.
    pub step: String,
    /// The environment (waits at environments only; `null` at gates).
    pub env: Option<String>,
    /// When every dependency was done (RFC 3339): the train's opening for a step without
    /// dependencies.
    pub ready_at: String,
    /// When the gate was unblocked, or the deploy step first triggered (RFC 3339).
    pub ended_at: String,
    /// Seconds between the two (0 when the tagger times say less).
    pub secs: i64,
}

/// One production deploy: a train's deploy step of the environment that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deploy {
    /// `N.P`.
    pub train: String,
    /// The train's commit.
    pub commit: String,
    /// When the deploy step reported success (RFC 3339).
    pub deployed_at: String,
    /// The committer time of the train's commit (RFC 3339), when known.
    pub committed_at: Option<String>,
    /// Lead time: seconds from the commit to the deploy, when the commit time is known.
    pub lead_time_secs: Option<i64>,
    /// What went wrong after it, if anything: `failure` (a later step of the train failed)
    /// or `rollback` (the deploy tag was rolled back from it).
    pub failed_by: Option<String>,
    /// The step that failed after the deploy (`failed_by: failure`).
    pub failed_step: Option<String>,
}

/// One incident in the environment: from a failure to the next restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// The train whose step failed first.
    pub train: String,
    /// The step that failed first (the deploy step, or one after it).
    pub step: String,
    /// When it failed (RFC 3339).
    pub failed_at: String,
    /// When the environment was restored (RFC 3339), if it was.
    pub restored_at: Option<String>,
    /// `deploy` (a later successful deploy) or `rollback`; absent while open.
    pub restored_by: Option<String>,
    /// Seconds from the failure to the restore; absent while open.
    pub secs: Option<i64>,
}

/// The four DORA figures of one environment over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dora {
    /// Successful deploys of trains to the environment in the window.
    pub deploys: u64,
    /// Rollback commits under the environment's deploy tag in the window.
    pub rollbacks: u64,
    /// Deployment frequency: `deploys` per day of the window.
    pub deploys_per_day: f64,
    /// Deployment frequency: `deploys` per week of the window.
    pub deploys_per_week: f64,
    /// Lead time for changes: train commit → successful deploy, over `deploys`.
    pub lead_time: Summary,
    /// Deploys that a later failure of their train or a rollback followed.
    pub failed_deploys: u64,
    /// Change failure rate: `failed_deploys / deploys`; `null` without deploys.
    pub change_failure_rate: Option<f64>,
    /// Time to restore: over the incidents of the window that were restored.
    pub time_to_restore: Summary,
    /// The deploys counted, oldest first.
    pub deploy_list: Vec<Deploy>,
    /// The incidents that began in the window, oldest first.
    pub incidents: Vec<Incident>,
}

/// Every figure from the tags.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// The environment of the DORA figures.
    pub env: String,
    /// Now (RFC 3339).
    pub now: String,
    /// The start of the window (RFC 3339).
    pub since: String,
    /// The window's length in seconds.
    pub window_secs: i64,
    /// How many trains were read.
    pub trains_read: u64,
    /// Trains by state (every state, zeros included): now, not over the window.
    pub trains: BTreeMap<String, u64>,
    /// Manual gates waiting for a person now.
    pub gates_waiting: u64,
    /// Deploy steps ready and waiting for their environment now.
    pub deploys_waiting: u64,
    /// Runs of steps that finished in the window, by train, step and attempt.
    pub step_durations: Vec<StepDuration>,
    /// The histogram of `step_durations`, by step.
    pub step_duration_histograms: BTreeMap<String, Histogram>,
    /// Waits at manual gates that ended in the window.
    pub gate_waits: Vec<Wait>,
    /// The histogram of `gate_waits`.
    pub gate_wait_histogram: Histogram,
    /// Waits at environments (every environment) that ended in the window.
    pub env_waits: Vec<Wait>,
    /// The histogram of `env_waits`, by environment.
    pub env_wait_histograms: BTreeMap<String, Histogram>,
    /// The DORA figures of `env`.
    pub dora: Dora,
}

/// Parse a window like `30d`, `12h` or `1d12h` (the duration syntax of `sdd.yaml`, at
/// most a year) into seconds. Zero is refused: an empty window has no rate.
pub fn parse_window(s: &str) -> Result<i64, String> {
    let d = crate::model::sdd::parse_duration(s).map_err(|e| {
        format!(
            "invalid window `{}`: {e}; use a duration like `30d` or `12h`",
            s.trim()
        )
    })?;
    match i64::try_from(d.as_secs()) {
        Ok(0) | Err(_) => Err(format!(
            "invalid window `{}`: it is empty; use a positive duration like `30d`",
            s.trim()
        )),
        Ok(n) => Ok(n),
    }
}

/// The environments the graphs of `trains` name, sorted and without repeats.
pub fn environment_names(trains: &[TrainInput<'_>]) -> Vec<String> {
    let mut v: Vec<String> = trains
        .iter()
        .flat_map(|t| t.sdd.environments().into_iter().map(|(e, _)| e.to_string()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The final state of the run that counts, with its event.
fn end_of(a: &Attempt) -> Option<(JobState, &Event)> {
    let states = a.current();
    [JobState::Timeout, JobState::Failure, JobState::Success]
        .into_iter()
        .find_map(|s| states.get(&s).map(|e| (s, e)))
}

/// When each step of one train was done, and when it became ready.
struct Times<'a> {
    t: TrainInput<'a>,
    done: BTreeMap<String, Option<i64>>,
}

impl<'a> Times<'a> {
    fn new(t: TrainInput<'a>) -> Self {
        Times {
            t,
            done: BTreeMap::new(),
        }
    }

    /// When every dependency of `step` was done (the train's opening without any).
    fn ready_at(&mut self, step: &str) -> Option<i64> {
        let needs = self.t.sdd.step(step)?.needs.clone();
        let mut at = self.t.obs.opened.at;
        for n in needs {
            at = at.max(self.done_at(&n)?);
        }
        Some(at)
    }

    /// When `step` was done: skipped, unblocked, reached (virtual), or its newest
    /// attempt that succeeded reported success.
    fn done_at(&mut self, step: &str) -> Option<i64> {
        if let Some(d) = self.done.get(step) {
            return *d;
        }
        let obs = self.t.obs;
        let s = self.t.sdd.step(step)?;
        let d = if let Some(e) = obs.skipped.get(step) {
            Some(e.at)
        } else if s.manual {
            obs.unblocked.get(step).map(|e| e.at)
        } else if s.is_virtual {
            self.ready_at(step)
        } else {
            success_at(obs, step)
        };
        self.done.insert(step.to_string(), d);
        d
    }
}

/// When the newest attempt of `step` that succeeded reported success.
fn success_at(obs: &Observed, step: &str) -> Option<i64> {
    obs.attempts.get(step).and_then(|atts| {
        atts.values().rev().find_map(|a| match end_of(a) {
            Some((JobState::Success, e)) => Some(e.at),
            _ => None,
        })
    })
}

/// Every figure from the tags of `trains` and the commits under the environment's deploy
/// tag (`deploy_commits`, oldest first).
pub fn compute(
    trains: &[TrainInput<'_>],
    deploy_commits: &[DeployCommit],
    opts: &MetricsOptions,
) -> Metrics {
    let now = opts.now;
    let since = now.saturating_sub(opts.window_secs.max(1)).max(0);
    let window = now - since;
    let in_window = |at: i64| at >= since && at <= now;

    let mut states: BTreeMap<String, u64> = TRAIN_STATES
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut gates_waiting = 0;
    let mut deploys_waiting = 0;
    let mut step_durations = Vec::new();
    let mut gate_waits = Vec::new();
    let mut env_waits = Vec::new();
    for t in trains {
        *states.entry(t.plan.state.as_str().to_string()).or_default() += 1;
        let train = t.obs.train.to_string();
        let cancelled = t.plan.state == TrainState::Cancelled;
        for v in &t.plan.steps {
            let ready = t.sdd.step(&v.name).is_some_and(|s| {
                s.needs
                    .iter()
                    .all(|n| t.plan.step(n).is_none_or(|d| d.state.is_done()))
            });
            if !cancelled && v.kind == StepKind::Manual && v.state == StepState::Blocked && ready {
                gates_waiting += 1;
            }
            if !cancelled && v.state == StepState::Waiting {
                deploys_waiting += 1;
            }
        }
        for (step, atts) in &t.obs.attempts {
            for (job, a) in atts {
                let (Some(trig), Some((state, end))) = (&a.triggered, end_of(a)) else {
                    continue;
                };
                if !in_window(end.at) {
                    continue;
                }
                step_durations.push(StepDuration {
                    train: train.clone(),
                    step: step.clone(),
                    attempt: *job,
                    outcome: state.as_str().to_string(),
                    finished_at: rfc3339(end.at),
                    secs: (end.at - trig.at).max(0),
                });
            }
        }
        let mut times = Times::new(*t);
        for s in t.sdd.steps().iter().filter(|s| s.manual) {
            let Some(e) = t.obs.unblocked.get(&s.name) else {
                continue;
            };
            if !in_window(e.at) {
                continue;
            }
            if let Some(r) = times.ready_at(&s.name) {
                gate_waits.push(wait(&train, &s.name, None, r, e.at));
            }
        }
        for (env, s) in t.sdd.environments() {
            let first = t
                .obs
                .attempts
                .get(&s.name)
                .and_then(|a| a.values().find_map(|a| a.triggered.as_ref()));
            let Some(trig) = first else { continue };
            if !in_window(trig.at) {
                continue;
            }
            if let Some(r) = times.ready_at(&s.name) {
                env_waits.push(wait(&train, &s.name, Some(env), r, trig.at));
            }
        }
    }
    step_durations.sort_by(|a, b| {
        (&a.finished_at, &a.train, &a.step).cmp(&(&b.finished_at, &b.train, &b.step))
    });
    let mut by_step: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in &step_durations {
        by_step.entry(d.step.clone()).or_default().push(d.secs);
    }
    let mut by_env: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for w in &env_waits {
        by_env
            .entry(w.env.clone().unwrap_or_default())
            .or_default()
            .push(w.secs);
    }
    let dora = dora(trains, deploy_commits, &opts.env, since, now);
    Metrics {
        env: opts.env.clone(),
        now: rfc3339(now),
        since: rfc3339(since),
        window_secs: window,
        trains_read: trains.len() as u64,
        trains: states,
        gates_waiting,
        deploys_waiting,
        step_duration_histograms: by_step
            .into_iter()
            .map(|(k, v)| (k, Histogram::of(v)))
            .collect(),
        step_durations,
        gate_wait_histogram: Histogram::of(gate_waits.iter().map(|w| w.secs)),
        gate_waits,
        env_wait_histograms: by_env
            .into_iter()
            .map(|(k, v)| (k, Histogram::of(v)))
            .collect(),
        env_waits,
        dora,
    }
}

fn wait(train: &str, step: &str, env: Option<&str>, ready: i64, ended: i64) -> Wait {
    Wait {
        train: train.to_string(),
        step: step.to_string(),
        env: env.map(str::to_string),
        ready_at: rfc3339(ready),
        ended_at: rfc3339(ended),
        secs: (ended - ready).max(0),
    }
}

/// Something that happened in the environment, for the incident sweep.
enum Happening {
    /// A step failed: the deploy step, or one after it.
    Failed { train: TrainId, step: String },
    /// A deploy succeeded.
    Deployed,
    /// The deploy tag was rolled back.
    RolledBack,
}

fn dora(
    trains: &[TrainInput<'_>],
    commits: &[DeployCommit],
    env: &str,
    since: i64,
    now: i64,
) -> Dora {
    let in_window = |at: i64| at >= since && at <= now;
    // (deploy time, train index, deploy)
    let mut deploys: Vec<(i64, TrainId, Deploy)> = Vec::new();
    let mut happenings: Vec<(i64, Happening)> = Vec::new();
    for t in trains {
        let Some((_, step)) = t.sdd.environments().into_iter().find(|(e, _)| *e == env) else {
            continue;
        };
        let obs = t.obs;
        let atts = obs.attempts.get(&step.name);
        // A failed deploy attempt is an incident.
        for a in atts.into_iter().flat_map(|a| a.values()) {
            if let Some((JobState::Failure | JobState::Timeout, e)) = end_of(a) {
                happenings.push((
                    e.at,
                    Happening::Failed {
                        train: obs.train,
                        step: step.name.clone(),
                    },
                ));
            }
        }
        let Some(at) = success_at(obs, &step.name) else {
            continue;
        };
        happenings.push((at, Happening::Deployed));
        // The first failure of a later step after the deploy succeeded.
        let mut after: Option<(i64, String)> = None;
        for (s, atts) in &obs.attempts {
            if !t.sdd.depends_on(s, &step.name) {
                continue;
            }
            for a in atts.values() {
                if let Some((JobState::Failure | JobState::Timeout, e)) = end_of(a) {
                    if e.at >= at {
                        happenings.push((
                            e.at,
                            Happening::Failed {
                                train: obs.train,
                                step: s.clone(),
                            },
                        ));
                        if after.as_ref().is_none_or(|(x, _)| e.at < *x) {
                            after = Some((e.at, s.clone()));
                        }
                    }
                }
            }
        }
        let committed = t.commit_time.map(crate::model::time::clamp);
        deploys.push((
            at,
            obs.train,
            Deploy {
                train: obs.train.to_string(),
                commit: obs.commit.clone(),
                deployed_at: rfc3339(at),
                committed_at: committed.map(rfc3339),
                lead_time_secs: committed.map(|c| (at - c).max(0)),
                failed_by: after.as_ref().map(|_| "failure".to_string()),
                failed_step: after.map(|(_, s)| s),
            },
        ));
    }
    // A rollback undoes the newest deploy commit before it that is not a rollback.
    let mut rollbacks = 0;
    let mut current: Option<TrainId> = None;
    for c in commits {
        if c.rollback {
            if in_window(c.at) {
                rollbacks += 1;
            }
            happenings.push((c.at, Happening::RolledBack));
            if let Some(undone) = current.take() {
                for (at, t, d) in deploys.iter_mut() {
                    if *t == undone && *at <= c.at && d.failed_by.is_none() {
                        d.failed_by = Some("rollback".into());
                    }
                }
            }
        } else if c.train.is_some() {
            current = c.train;
        }
    }
    // The incidents: a failure opens one (unless one is open), the next deploy or
    // rollback closes it. At the same second, failures come first.
    happenings.sort_by_key(|(at, h)| (*at, !matches!(h, Happening::Failed { .. })));
    let mut incidents: Vec<Incident> = Vec::new();
    let mut open: Option<(i64, Incident)> = None;
    for (at, h) in happenings {
        match h {
            Happening::Failed { train, step } => {
                if open.is_none() {
                    open = Some((
                        at,
                        Incident {
                            train: train.to_string(),
                            step,
                            failed_at: rfc3339(at),
                            restored_at: None,
                            restored_by: None,
                            secs: None,
                        },
                    ));
                }
            }
            Happening::Deployed | Happening::RolledBack => {
                if let Some((from, mut i)) = open.take() {
                    i.restored_at = Some(rfc3339(at));
                    i.restored_by = Some(
                        if matches!(h, Happening::Deployed) {
                            "deploy"
                        } else {
                            "rollback"
                        }
                        .into(),
                    );
                    i.secs = Some((at - from).max(0));
                    if in_window(from) {
                        incidents.push(i);
                    }
                }
            }
        }
    }
    if let Some((from, i)) = open {
        if in_window(from) {
            incidents.push(i);
        }
    }
    deploys.retain(|(at, _, _)| in_window(*at));
    deploys.sort_by_key(|(at, t, _)| (*at, *t));
    let deploy_list: Vec<Deploy> = deploys.into_iter().map(|(_, _, d)| d).collect();
    let n = deploy_list.len() as u64;
    let failed = deploy_list.iter().filter(|d| d.failed_by.is_some()).count() as u64;
    let days = (now - since).max(1) as f64 / 86_400.0;
    Dora {
        deploys: n,
        rollbacks,
        deploys_per_day: n as f64 / days,
        deploys_per_week: n as f64 / days * 7.0,
        lead_time: Summary::of(deploy_list.iter().filter_map(|d| d.lead_time_secs)),
        failed_deploys: failed,
        change_failure_rate: (n > 0).then(|| failed as f64 / n as f64),
        time_to_restore: Summary::of(incidents.iter().filter_map(|i| i.secs)),
        deploy_list,
        incidents,
    }
}

#[cfg(test)]
mod tests;
