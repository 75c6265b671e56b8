//! Operations: what each subcommand does, on top of the store, the graph and the planner.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::plan::{
    plan, Action, Plan, PlanContext, StepKind, StepState, TrainState, TriggerReason,
};
use crate::sdd::Sdd;
use crate::store::{Identity, PushOutcome, Store};
use crate::tag::{JobState, StepVerb, Tag, TrainId, Trigger, MAX_JOB, MAX_PATCH, MAX_TRAIN};
use crate::train::{short, Observed, TagRecord};

/// How many of the newest train numbers a tick without `--train` follows.
pub const DEFAULT_HORIZON: u32 = 20;

/// Glob for every tag of one train (and, harmlessly, malformed look-alikes).
pub fn train_glob(t: TrainId) -> String {
    format!("release={t}*")
}

pub use crate::discover::{cached_trains, discover, Discovery, IgnoredTrain};

/// Refresh one train's tags.
pub fn refresh_train(store: &Store, t: TrainId) -> Result<()> {
    store.refresh(&[train_glob(t)])
}

/// Read one train from the cache.
pub fn observe(store: &Store, t: TrainId) -> Result<Observed> {
    let records = store.tag_records(&train_glob(t))?;
    let signed = store.requires_signatures();
    Observed::from_records_checked(t, &records, signed).ok_or_else(|| {
        if signed && records.iter().any(|r| r.name == Tag::Train(t).to_string()) {
            return Error::input(format!(
                "train `{t}` on `{}` is not signed by an allowed signer; its tags are ignored",
                store.remote().url
            ));
        }
        Error::input(format!(
            "train `{t}` does not exist on `{}`",
            store.remote().url
        ))
    })
}

/// The step graph a train runs: `sdd.yaml` at its own commit, unless overridden.
pub fn train_sdd(store: &Store, obs: &Observed, override_sdd: Option<&Sdd>) -> Result<Sdd> {
    if let Some(s) = override_sdd {
        return Ok(s.clone());
    }
    let data = store
        .read_file_at(&obs.commit, "sdd.yaml")?
        .ok_or_else(|| {
            Error::input(format!(
                "train {} has no `sdd.yaml` at its commit {}; pass `--sdd FILE`",
                obs.train,
                short(&obs.commit)
            ))
        })?;
    let text = String::from_utf8_lossy(&data);
    Ok(Sdd::parse(
        &format!("sdd.yaml@{}", short(&obs.commit)),
        &text,
    )?)
}

/// Options for `start`.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The commit.
    pub sha: String,
    /// Open a hotfix `N.(P+1)` of train N instead of a new train.
    pub hotfix: Option<u32>,
}

/// Open a train. Create-only: a racing start takes the next number.
pub fn start(store: &Store, opts: &StartOptions, who: &Identity, now: i64) -> Result<TrainId> {
    let commit = store.ensure_commit(&opts.sha)?;
    let mut id = match opts.hotfix {
        Some(n) => {
            store.refresh(&[format!("release={n}.*")])?;
            let patches: Vec<u32> = cached_trains(store)?
                .into_iter()
                .filter(|t| t.number == n)
                .map(|t| t.patch)
                .collect();
            if patches.is_empty() {
                return Err(Error::input(format!(
                    "cannot open a hotfix of train {n}: train `{n}.0` does not exist on `{}`",
                    store.remote().url
                )));
            }
            TrainId::new(
                n,
                next_number(
                    patches.iter().max().copied().unwrap_or(0),
                    MAX_PATCH,
                    "patch number",
                )?,
            )
        }
        None => {
            // Numbering follows the real trains: junk never raises it (a junk tag that
            // squats the next number is skipped by the create-only push below).
            let known = discover(store, 1, false)?.trains;
            TrainId::new(
                next_number(
                    known.iter().map(|t| t.number).max().unwrap_or(0),
                    MAX_TRAIN,
                    "train number",
                )?,
                0,
            )
        }
    };
    for _ in 0..1000 {
        let name = Tag::Train(id).to_string();
        let msg = format!("train {id}\n\nopened-by: {who}\ncommit: {commit}\n");
        let oid = store.make_tag(&name, &commit, &msg, who, now)?;
        match store.push_tag_create(&name, &oid)? {
            PushOutcome::Created => return Ok(id),
            PushOutcome::AlreadyExists(_) => {
                id = match opts.hotfix {
                    Some(_) => {
                        TrainId::new(id.number, next_number(id.patch, MAX_PATCH, "patch number")?)
                    }
                    None => TrainId::new(next_number(id.number, MAX_TRAIN, "train number")?, 0),
                };
            }
        }
    }
    Err(Error::Conflict(
        "could not find a free train number after 1000 tries".into(),
    ))
}

/// `n + 1`, unless that passes `max`, the largest the tag protocol reads.
fn next_number(n: u32, max: u32, what: &str) -> Result<u32> {
    n.checked_add(1).filter(|&m| m <= max).ok_or_else(|| {
        Error::input(format!(
            "no {what} left: `{n}` is the largest the tag protocol allows ({max})"
        ))
    })
}

/// Options for `tick`.
#[derive(Debug, Clone, Default)]
pub struct TickOptions {
    /// One train, or all running trains within the horizon.
    pub train: Option<TrainId>,
    /// Target override.
    pub target: Option<String>,
    /// Graph override.
    pub sdd: Option<Sdd>,
    /// Plan and print, push nothing.
    pub dry_run: bool,
    /// How many of the newest train numbers to follow.
    pub horizon: u32,
}

/// What happened to one action.
#[derive(Debug, Clone, Serialize)]
pub struct ActionResult {
    /// The action.
    #[serde(flatten)]
    pub action: Action,
    /// The tag it creates.
    pub tag: String,
    /// `created`, `already-exists` (a racing tick won), `dry-run`, `failed` (see `error`),
    /// or `cancelled` (the train was cancelled while this tick ran; nothing was pushed).
    pub outcome: String,
    /// Why it failed, with the server's own message when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code of that failure; 0 when it did not fail.
    #[serde(skip)]
    pub code: i32,
}

/// One train's tick.
#[derive(Debug, Clone, Serialize)]
pub struct TrainTick {
    /// The train.
    pub train: String,
    /// Its state after planning (before the actions take effect).
    pub state: TrainState,
    /// The target.
    pub target: String,
    /// What was done.
    pub actions: Vec<ActionResult>,
    /// What was ignored.
    pub warnings: Vec<String>,
    /// Set when the train could not be planned.
    pub error: Option<String>,
    /// The exit code of `error`; 0 without one.
    #[serde(skip)]
    pub code: i32,
}

/// What a tick did.
#[derive(Debug)]
pub struct TickReport {
    /// Every train it looked at, with what it did and what failed.
    pub trains: Vec<TrainTick>,
    /// Train tags that are not trains (see [`crate::discover`]).
    pub ignored: Vec<IgnoredTrain>,
    /// What stopped the tick before it looked at every train: the remote rejected the
    /// credentials, or the cache cannot be written. Every further push would fail alike.
    pub stopped: Option<Error>,
}

impl TickReport {
    /// The exit code: that of what stopped the tick, else the highest among the failed
    /// actions and trains (3 when a push or a read failed, 2 when a train could not be
    /// planned), else 0.
    pub fn exit_code(&self) -> i32 {
        if let Some(e) = &self.stopped {
            return e.exit_code();
        }
        self.trains
            .iter()
            .flat_map(|t| std::iter::once(t.code).chain(t.actions.iter().map(|a| a.code)))
            .max()
            .unwrap_or(crate::exit_codes::OK)
    }
}

/// Whether an error means that nothing more can be written: rejected credentials, or a
/// cache that cannot be written (a full disk). A tick stops at the first such error.
fn stops_the_tick(e: &Error) -> bool {
    matches!(e, Error::Auth(_) | Error::Io { .. })
}

/// Advance trains. A failure of one action (a push the server rejects) or one train (its
/// `sdd.yaml` is broken, a read failed) is reported in its [`ActionResult`] or
/// [`TrainTick`] and stops nothing else; rejected credentials and local I/O failures stop
/// the tick ([`TickReport::stopped`]). Discovery failing is the command's error.
pub fn tick(store: &Store, opts: &TickOptions, who: &Identity, now: i64) -> Result<TickReport> {
    let mut ignored = Vec::new();
    let trains: Vec<TrainId> = match opts.train {
        Some(t) => {
            refresh_train(store, t)?;
            vec![t]
        }
        None => {
            let d = discover(store, opts.horizon.max(1), opts.sdd.is_some())?;
            ignored = d.ignored;
            d.trains.into_iter().collect()
        }
    };
    let mut out = Vec::new();
    for t in trains {
        match tick_one(store, t, opts, who, now) {
            Ok((tt, stop)) => {
                out.push(tt);
                if let Some(e) = stop {
                    return Ok(TickReport {
                        trains: out,
                        ignored,
                        stopped: Some(e),
                    });
                }
            }
            Err(e) if stops_the_tick(&e) => {
                return Ok(TickReport {
                    trains: out,
                    ignored,
                    stopped: Some(e),
                })
            }
            Err(e) if opts.train.is_some() => return Err(e),
            // With verification on, an unsigned train tag is junk to report, not an error.
            Err(Error::Input(msg)) if msg.contains("is not signed by an allowed signer") => out
                .push(TrainTick {
                    train: t.to_string(),
                    state: TrainState::Running,
                    target: opts.target.clone().unwrap_or_default(),
                    actions: vec![],
                    warnings: vec![msg],
                    error: None,
                    code: 0,
                }),
            Err(e) => out.push(TrainTick {
                train: t.to_string(),
                state: TrainState::Running,
                target: opts.target.clone().unwrap_or_default(),
                actions: vec![],
                warnings: vec![],
                error: Some(e.to_string()),
                code: e.exit_code(),
            }),
        }
    }
    Ok(TickReport {
        trains: out,
        ignored,
        stopped: None,
    })
}

/// Everything needed to plan one train.
pub struct Planned {
    /// The tags.
    pub obs: Observed,
    /// The graph.
    pub sdd: Sdd,
    /// The plan.
    pub plan: Plan,
}

/// Observe and plan one train (evaluating `if_changed` conditions as needed).
pub fn plan_train(
    store: &Store,
    t: TrainId,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
) -> Result<Planned> {
    let obs = observe(store, t)?;
    plan_observed(store, obs, sdd, target, now)
}

/// Like [`plan_train`], but a train whose tags were collected by `gc` is read from the
/// archive. The second value says whether it was.
pub fn plan_train_any(
    store: &Store,
    t: TrainId,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
) -> Result<(Planned, bool)> {
    match observe(store, t) {
        Ok(obs) => Ok((plan_observed(store, obs, sdd, target, now)?, false)),
        Err(Error::Input(msg)) => match crate::gc::archived(store, t)? {
            Some(a) => {
                let obs =
                    Observed::from_records(t, &a.tags).ok_or_else(|| Error::Input(msg.clone()))?;
                let _ = store.ensure_commit(&obs.commit);
                Ok((plan_observed(store, obs, sdd, target, now)?, true))
            }
            None => Err(Error::Input(msg)),
        },
        Err(e) => Err(e),
    }
}

/// Plan an observed train.
pub fn plan_observed(
    store: &Store,
    mut obs: Observed,
    sdd: Option<&Sdd>,
    target: Option<&str>,
    now: i64,
) -> Result<Planned> {
    let sdd = train_sdd(store, &obs, sdd)?;
    let target = match target {
        Some(x) => {
            sdd.check_target(x).map_err(Error::Input)?;
            x.to_string()
        }
        None => sdd.default_target().map_err(Error::Input)?.to_string(),
    };
    obs.retain_steps(|s| sdd.step(s).is_some());
    let mut ctx = PlanContext {
        now,
        conditions: BTreeMap::new(),
    };
    let mut p = plan(&sdd, &target, &obs, &ctx);
    let evals: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Evaluate { step } => Some(step.clone()),
            _ => None,
        })
        .collect();
    if !evals.is_empty() {
        for step in evals {
            let globs = sdd
                .step(&step)
                .map(|s| s.if_changed.clone())
                .unwrap_or_default();
            let verdict = evaluate_condition(store, &obs, &sdd, &target, &globs, now)?;
            ctx.conditions.insert(step, verdict);
        }
        p = plan(&sdd, &target, &obs, &ctx);
    }
    Ok(Planned { obs, sdd, plan: p })
}

fn evaluate_condition(
    store: &Store,
    obs: &Observed,
    sdd: &Sdd,
    target: &str,
    globs: &[String],
    now: i64,
) -> Result<(bool, String)> {
    let list = globs
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some((prev, commit)) = last_reached(store, obs.train, sdd, target, now)? else {
        return Ok((
            true,
            format!("no earlier train reached `{target}`; runs by default"),
        ));
    };
    let changed = store.changed_paths(&commit, &obs.commit)?;
    match crate::changes::first_match(globs, &changed).map_err(Error::Input)? {
        Some(p) => Ok((
            true,
            format!("`{p}` changed since train {prev} ({})", short(&commit)),
        )),
        None => Ok((
            false,
            format!(
                "skipped: nothing matching {list} changed since train {prev} ({})",
                short(&commit)
            ),
        )),
    }
}

/// The newest other train (in the cache) that reached `target`, with its commit.
fn last_reached(
    store: &Store,
    me: TrainId,
    sdd: &Sdd,
    target: &str,
    now: i64,
) -> Result<Option<(TrainId, String)>> {
    // Only older trains count: a newer train in production must not change (or skip) the
    // gate of an older one. Make sure the cache knows them, even when this tick follows
    // one train only.
    let mut trains = cached_trains(store)?;
    if !trains.iter().any(|t| *t < me) {
        trains = discover(store, DEFAULT_HORIZON, false)?.trains;
    }
    for t in trains.into_iter().rev() {
        if t >= me {
            continue;
        }
        let Ok(mut obs) = observe(store, t) else {
            continue;
        };
        obs.retain_steps(|s| sdd.step(s).is_some());
        // Undecided conditions count as changed: such a train has not passed its gate.
        let conditions = sdd
            .steps()
            .iter()
            .filter(|s| !s.if_changed.is_empty())
            .map(|s| (s.name.clone(), (true, String::new())))
            .collect();
        let p = plan(sdd, target, &obs, &PlanContext { now, conditions });
        if p.state == TrainState::Succeeded {
            return Ok(Some((t, obs.commit)));
        }
    }
    Ok(None)
}

/// Tick one train: push each of its actions, each on its own. A failed action is recorded
/// and the next one is tried; an error that stops the tick is returned beside what was
/// done.
fn tick_one(
    store: &Store,
    t: TrainId,
    opts: &TickOptions,
    who: &Identity,
    now: i64,
) -> Result<(TrainTick, Option<Error>)> {
    let Planned {
        obs, plan: mut p, ..
    } = plan_train(store, t, opts.sdd.as_ref(), opts.target.as_deref(), now)?;
    let mut actions = Vec::new();
    let mut stopped = None;
    let mut cancelled = false;
    for a in p
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Evaluate { .. }))
    {
        let Some(tag) = a.tag(t) else { continue };
        let name = tag.to_string();
        let mut result = ActionResult {
            action: a.clone(),
            tag: name.clone(),
            outcome: "dry-run".into(),
            error: None,
            code: 0,
        };
        if cancelled && !opts.dry_run {
            result.outcome = "cancelled".into();
        } else if !opts.dry_run {
            match push_action(store, &obs, a, &name, who, now) {
                Ok(outcome) => {
                    cancelled = outcome == "cancelled";
                    result.outcome = outcome.into();
                }
                // Reported as what stopped the tick, not as this action's failure.
                Err(e) if stops_the_tick(&e) => {
                    stopped = Some(e);
                    break;
                }
                Err(e) => {
                    result.outcome = "failed".into();
                    result.error = Some(e.to_string());
                    result.code = e.exit_code();
                }
            }
        }
        actions.push(result);
    }
    if cancelled {
        p.warnings.push(format!(
            "train {t} was cancelled while this tick ran; nothing more was pushed"
        ));
    }
    Ok((
        TrainTick {
            train: t.to_string(),
            state: p.state,
            target: p.target,
            actions,
            warnings: p.warnings,
            error: None,
            code: 0,
        },
        stopped,
    ))
}

/// Push one action's tag, unless the train was cancelled since the tick read it: the
/// cancel tag is read again right before every push (one prefix fetch), so a cancel that
/// lands while a tick runs stops its remaining pushes. Returns the outcome.
fn push_action(
    store: &Store,
    obs: &Observed,
    a: &Action,
    name: &str,
    who: &Identity,
    now: i64,
) -> Result<&'static str> {
    if cancelled_since(store, obs)? {
        return Ok("cancelled");
    }
    let oid = store.make_tag(
        name,
        &obs.commit,
        &format!("{}\nby: {who}\n", a.message()),
        who,
        now,
    )?;
    Ok(match store.push_tag_create(name, &oid)? {
        PushOutcome::Created => "created",
        PushOutcome::AlreadyExists(_) => "already-exists",
    })
}

/// Whether the remote now has a cancel tag for this train that the trust rules accept (on
/// the train's commit; signed by an allowed signer when signatures are required).
fn cancelled_since(store: &Store, obs: &Observed) -> Result<bool> {
    let name = Tag::Cancelled(obs.train).to_string();
    // A glob: a missing tag is then no error.
    store.refresh(&[format!("{name}*")])?;
    Ok(store.tag_record(&name).is_some_and(|r| {
        r.commit == obs.commit && (!store.requires_signatures() || r.signer.is_some())
    }))
}

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
        crate::train::check_one_line("a line of `--info-string`", line)?;
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
    let record = store.tag_record(&trig_name).ok_or_else(|| {
        Error::input(format!(
            "triggering tag `{trig_name}` does not exist on `{}`",
            store.remote().url
        ))
    })?;
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
        next_number(highest.max(current), crate::tag::MAX_RERUN, "re-run number")?
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
fn require_trusted_trigger(store: &Store, record: &TagRecord, refusing_to: &str) -> Result<()> {
    if store.requires_signatures() && record.signer.is_none() {
        return Err(Error::input(format!(
            "triggering tag `{}` is not signed by an allowed signer ({}); refusing to {refusing_to}",
            record.name,
            record.signature_error.as_deref().unwrap_or("unsigned")
        )));
    }
    Ok(())
}

/// `konductor unblock`: attest a manual gate.
pub fn unblock(
    store: &Store,
    t: TrainId,
    step: &str,
    reason: Option<&str>,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<String> {
    if let Some(r) = reason {
        crate::train::check_one_line("`--reason`", r)?;
    }
    refresh_train(store, t)?;
    let Planned { obs, sdd, plan: p } = plan_train(store, t, sdd, None, now)?;
    let Some(s) = sdd.step(step) else {
        return Err(unknown_step(&sdd, step));
    };
    if !s.manual {
        return Err(Error::input(format!(
            "step `{step}` is not a manual gate; only steps with `manual: true` can be unblocked"
        )));
    }
    if obs.unblocked.contains_key(step) {
        return Ok("already-unblocked".into());
    }
    if !s.approvers.is_empty()
        && !s
            .approvers
            .iter()
            .any(|a| crate::plan::same_identity(a, &by.to_string()))
    {
        return Err(Error::input(format!(
            "`{by}` may not unblock `{step}`; approvers: {}",
            s.approvers.join(", ")
        )));
    }
    if let Some(v) = p.step(step) {
        if v.state == StepState::Skipped {
            return Err(Error::input(format!(
                "step `{step}` of train {t} was skipped ({}); nothing to unblock",
                v.reason.clone().unwrap_or_default()
            )));
        }
        if !(v.state == StepState::Blocked && v.kind == StepKind::Manual) {
            let pending: Vec<String> = s
                .needs
                .iter()
                .filter(|d| p.step(d).is_some_and(|x| !x.state.is_done()))
                .map(|d| format!("`{d}`"))
                .collect();
            if pending.is_empty() {
                // Its dependencies are done but the gate is not waiting yet: its
                // `if_changed` condition decided to skip it and no tick recorded that yet.
                return Err(Error::input(format!(
                    "gate `{step}` of train {t} is not waiting for an unblock: {}; the next tick records it",
                    v.reason.as_deref().unwrap_or(v.state.as_str())
                )));
            }
            return Err(Error::input(format!(
                "gate `{step}` of train {t} is not waiting: its dependencies are not done yet ({})",
                pending.join(", ")
            )));
        }
    }
    if obs.cancelled.is_some() {
        return Err(Error::input(format!("train {t} is cancelled")));
    }
    let name = Tag::Step(t, step.to_string(), StepVerb::Unblocked).to_string();
    // Konductor's fields come first; the reason is one line and comes last.
    let msg = format!(
        "unblock `{step}`\n\nby: {by}\nreason: {}\n",
        reason.unwrap_or("(none given)")
    );
    let oid = store.make_tag(&name, &obs.commit, &msg, by, now)?;
    Ok(match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "unblocked".into(),
        PushOutcome::AlreadyExists(_) => "already-unblocked".into(),
    })
}

/// `konductor retry`: trigger the next attempt of a failed step.
pub fn retry(
    store: &Store,
    t: TrainId,
    step: &str,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<(String, String)> {
    refresh_train(store, t)?;
    let planned = match plan_train(store, t, sdd, None, now) {
        Err(Error::Input(m)) if m.contains("does not exist") => {
            if crate::gc::archived(store, t)?.is_some() {
                return Err(Error::input(format!(
                    "train {t} is archived (collected by `konductor gc`); an archived train cannot be retried: start a new train"
                )));
            }
            return Err(Error::Input(m));
        }
        other => other?,
    };
    let Planned { obs, sdd, plan: p } = planned;
    if sdd.step(step).is_none() {
        return Err(unknown_step(&sdd, step));
    }
    if obs.cancelled.is_some() {
        return Err(Error::input(format!(
            "train {t} is cancelled; nothing can be retried"
        )));
    }
    let v = p.step(step).ok_or_else(|| {
        Error::input(format!(
            "step `{step}` is not needed by the target `{}`",
            p.target
        ))
    })?;
    let latest = obs
        .attempts
        .get(step)
        .and_then(|a| a.keys().next_back().copied())
        .unwrap_or(0);
    // A name squatted by an ignored tag is skipped, as the planner does.
    let next = crate::plan::next_job(&obs, step).ok_or_else(|| {
        Error::input(format!(
            "step `{step}` of train {t} has no job id left: a tag of it uses {MAX_JOB}, the largest the tag protocol allows"
        ))
    })?;
    // A retry the tick is already making counts: same tag name, one attempt.
    let auto = p
        .actions
        .iter()
        .any(|a| matches!(a, Action::Trigger { step: s, .. } if s == step));
    if v.state != StepState::Failure && !auto {
        return Err(Error::input(format!(
            "step `{step}` of train {t} is `{}`, not failed; only a failed step can be retried",
            v.state.as_str()
        )));
    }
    let tr = Trigger::new(t, step, next);
    let name = tr.tag().to_string();
    let a = Action::Trigger {
        step: step.into(),
        job: next,
        reason: TriggerReason::Manual { after: latest },
    };
    let oid = store.make_tag(
        &name,
        &obs.commit,
        &format!("{}\nby: {by}\n", a.message()),
        by,
        now,
    )?;
    let outcome = match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "created",
        PushOutcome::AlreadyExists(_) => "already-exists",
    };
    if outcome == "created" {
        survives_gc(store, t, &name, &oid)?;
    }
    Ok((name, outcome.into()))
}

/// How long a retry waits for a concurrent `gc` to give a collected train its train tag
/// back, in checks half a second apart.
pub const GC_RESTORE_CHECKS: u32 = 10;

/// A retry's trigger made a failed (finished) train live again. `konductor gc` may have
/// judged the train finished just before: it re-checks for new tags before and right after
/// deleting train tags, and restores a train tag when it finds one (see `gc.rs`). If the
/// train tag is gone and does not come back, gc won: withdraw the trigger (compare-and-
/// swap), so that no job runs for a train that no longer exists, and tell the user.
fn survives_gc(store: &Store, t: TrainId, trigger: &str, trigger_oid: &str) -> Result<()> {
    let train_tag = format!("refs/tags/{}", Tag::Train(t));
    for i in 0..GC_RESTORE_CHECKS {
        if store.ls_remote()?.iter().any(|r| r.name == train_tag) {
            return Ok(());
        }
        if i + 1 < GC_RESTORE_CHECKS {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    let refname = format!("refs/tags/{trigger}");
    let changed = store.push_delete(&[crate::wire::Delete {
        refname: refname.clone(),
        old: trigger_oid.to_string(),
    }])?;
    Err(Error::Conflict(format!(
        "train {t} was archived by a concurrent `konductor gc` while this retry was made; {}; nothing was retried (`konductor status --train {t}` reads the archive)",
        if changed.is_empty() {
            format!("the trigger `{trigger}` was withdrawn")
        } else {
            format!("the trigger `{trigger}` changed meanwhile and was left alone")
        }
    )))
}

/// `konductor cancel`.
pub fn cancel(
    store: &Store,
    t: TrainId,
    reason: Option<&str>,
    by: &Identity,
    now: i64,
) -> Result<String> {
    if let Some(r) = reason {
        crate::train::check_one_line("`--reason`", r)?;
    }
    refresh_train(store, t)?;
    let obs = observe(store, t)?;
    if obs.cancelled.is_some() {
        return Ok("already-cancelled".into());
    }
    let name = Tag::Cancelled(t).to_string();
    let msg = format!(
        "cancel train {t}\n\nby: {by}\nreason: {}\n",
        reason.unwrap_or("(none given)")
    );
    let oid = store.make_tag(&name, &obs.commit, &msg, by, now)?;
    Ok(match store.push_tag_create(&name, &oid)? {
        PushOutcome::Created => "cancelled".into(),
        PushOutcome::AlreadyExists(_) => "already-cancelled".into(),
    })
}

fn unknown_step(sdd: &Sdd, step: &str) -> Error {
    let hint = crate::sdd::nearest(step, sdd.steps().iter().map(|s| s.name.as_str()))
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    Error::input(format!("unknown step `{step}` in {}{hint}", sdd.source))
}

/// Options for `locomotive publish-manifests`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Directory with the generated manifests.
    pub dir: std::path::PathBuf,
    /// The moving tag ArgoCD syncs from (`staging-k8s`, `k8s-production`).
    pub tag: String,
    /// The trigger of the deploy step.
    pub triggering_tag: String,
}

/// What `publish-manifests` did.
#[derive(Debug, Clone, Serialize)]
pub struct PublishResult {
    /// The moving tag.
    pub tag: String,
    /// The previous deploy commit, if any.
    pub previous: Option<String>,
    /// The new deploy commit.
    pub commit: String,
    /// The train.
    pub train: String,
    /// Folders left out because git cannot hold them empty, as paths with a trailing `/`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_dirs: Vec<String>,
}

/// Why `tag` cannot be a deploy tag, if it cannot: empty, under `release=`, starting with
/// `-` (git refuses such tag names, and one could pass for an option), or not a valid ref
/// name (`git check-ref-format`).
pub fn deploy_tag_problem(tag: &str) -> Option<&'static str> {
    if tag.is_empty() {
        Some("it is empty")
    } else if tag.starts_with(crate::tag::PREFIX) {
        Some("names under `release=` are Konductor's")
    } else if tag.starts_with('-') {
        Some("a tag name cannot start with `-`")
    } else if !git2::Reference::is_valid_name(&format!("refs/tags/{tag}")) {
        Some("it is not a valid git ref name")
    } else {
        None
    }
}

/// Commit the manifests in `dir` as a dangling commit whose parent is the previous deploy
/// commit under `tag`, then move `tag` there with a compare-and-swap push: a tag moved
/// meanwhile is a [`Error::Conflict`], never a silent overwrite. A folder that holds
/// anything git cannot commit as it is (see [`crate::manifests`]) is refused before
/// anything is read from the remote: nothing is pushed and the tag does not move.
pub fn publish_manifests(
    store: &Store,
    opts: &PublishOptions,
    who: &Identity,
    now: i64,
) -> Result<PublishResult> {
    let tag = opts.tag.trim();
    if let Some(why) = deploy_tag_problem(tag) {
        return Err(Error::input(format!(
            "`{tag}` cannot be a deploy tag: {why}; use a valid tag name outside `release=`, like `staging-k8s`"
        )));
    }
    let meta = std::fs::metadata(&opts.dir).map_err(|e| Error::Io {
        what: format!("cannot read manifest directory `{}`", opts.dir.display()),
        source: e,
    })?;
    if !meta.is_dir() {
        return Err(Error::input(format!(
            "`{}` is not a directory",
            opts.dir.display()
        )));
    }
    let scan = crate::manifests::scan(&opts.dir)?;
    scan.check(&opts.dir, tag)?;
    let trig = match opts.triggering_tag.parse::<Tag>()? {
        Tag::Trigger(tr) => tr,
        other => {
            return Err(Error::input(format!(
                "`{other}` is not a trigger tag; expected `release=N.P=<step>.<job>`"
            )))
        }
    };
    let trig_name = trig.tag().to_string();
    let not_found = || {
        Error::input(format!(
            "triggering tag `{trig_name}` does not exist on `{}`",
            store.remote().url
        ))
    };
    let source = if store.requires_signatures() {
        // Only a trigger a listed key signed may move a deploy tag. Checking the signature
        // needs the tag object; its record also gives the commit.
        // A glob, as in set_step_state: a trigger the remote lacks is then "does not exist"
        // (exit 2), not a failed fetch of a missing ref.
        store.refresh(&[format!("{trig_name}*")])?;
        let record = store.tag_record(&trig_name).ok_or_else(not_found)?;
        require_trusted_trigger(store, &record, "deploy for it")?;
        record.commit
    } else {
        // Read the trigger's commit from the advertisement: the deploy commit does not
        // need the train's objects, only its id for the message.
        let refs = store.ls_remote()?;
        let find = |n: &str| refs.iter().find(|r| r.name == n).map(|r| r.oid.clone());
        find(&format!("refs/tags/{trig_name}^{{}}"))
            .or_else(|| find(&format!("refs/tags/{trig_name}")))
            .ok_or_else(not_found)?
    };
    let refname = format!("refs/tags/{tag}");
    let previous = if store.fetch_ref(&refname)? {
        store.ref_target(&refname)
    } else {
        None
    };
    let previous_commit = match &previous {
        Some(p) => Some(store.ensure_commit(p)?),
        None => None,
    };
    let msg = format!(
        "deploy train {} to {tag}\n\ntrain: {}\nsource: {}\ntrigger: {trig_name}\nby: {who}\n",
        trig.train, trig.train, source
    );
    let commit = store.commit_dir(&scan, previous_commit.as_deref(), &msg, who, now)?;
    store.push_ref_cas(&refname, &commit, previous.as_deref())?;
    Ok(PublishResult {
        tag: tag.to_string(),
        previous,
        commit,
        train: trig.train.to_string(),
        empty_dirs: scan.empty_dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_tag_names_are_what_git_accepts() {
        let cases = [
            ("staging-k8s", true),
            ("k8s/production", true),
            ("v1.2.3", true),
            ("--upload-pack=touch", false),
            ("-x", false),
            ("", false),
            ("release=1.0", false),
            ("a..b", false),
            ("a b", false),
            ("a~1", false),
            ("a^", false),
            ("a:b", false),
            ("a?", false),
            ("a[b", false),
            ("a.lock", false),
            ("a/", false),
            ("a//b", false),
            ("@", true),
            ("a@{1}", false),
            ("a\\b", false),
            ("x.", false),
            (".x", false),
            ("a\u{7f}b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(deploy_tag_problem(name).is_none(), ok, "{name:?}");
            // The same verdict as git's, apart from what Konductor refuses on top.
            if !name.is_empty() && !name.starts_with('-') && !name.starts_with("release=") {
                let git = std::process::Command::new("git")
                    .args(["check-ref-format", &format!("refs/tags/{name}")])
                    .status()
                    .expect("run git check-ref-format");
                assert_eq!(git.success(), ok, "git check-ref-format {name:?}");
            }
        }
    }
}
