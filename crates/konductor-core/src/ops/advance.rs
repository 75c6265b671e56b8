//! Advancing trains: `tick`, one create-only push per action, failures isolated per action
//! and per train.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::{Identity, PushOutcome, Store};
use crate::model::plan::{Action, TrainState};
use crate::model::sdd::Sdd;
use crate::model::tag::{Tag, TrainId};
use crate::model::train::Observed;

#[allow(unused_imports)]
use super::*;

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
    /// `cancelled` (the train was cancelled while this tick ran; nothing was pushed), or
    /// `not-claimed` (a deploy trigger not pushed because this tick did not create the
    /// environment claim before it).
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
    /// Train tags that are not trains (see [`crate::ops::discover`]).
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
pub(crate) fn stops_the_tick(e: &Error) -> bool {
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
    // The environment facts, once for every train of this tick: the trains it follows and
    // the cache's others (a `--train` tick reads the ones earlier commands followed).
    let mut known = cached_trains(store)?;
    known.extend(trains.iter().copied());
    let envs = match super::environments::environments(store, &known, opts.sdd.as_ref(), now) {
        Ok(e) => e,
        Err(e) if stops_the_tick(&e) => {
            return Ok(TickReport {
                trains: vec![],
                ignored,
                stopped: Some(e),
            })
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for t in trains {
        match tick_one(store, t, opts, who, now, &envs) {
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

/// Tick one train: push each of its actions, each on its own. A failed action is recorded
/// and the next one is tried; an error that stops the tick is returned beside what was
/// done.
pub(crate) fn tick_one(
    store: &Store,
    t: TrainId,
    opts: &TickOptions,
    who: &Identity,
    now: i64,
    envs: &crate::model::env::Environments,
) -> Result<(TrainTick, Option<Error>)> {
    let Planned {
        obs, plan: mut p, ..
    } = plan_train_in(
        store,
        t,
        opts.sdd.as_ref(),
        opts.target.as_deref(),
        now,
        envs,
    )?;
    let mut actions = Vec::new();
    let mut stopped = None;
    let mut cancelled = false;
    // Deploy steps whose claim this tick did not create: their trigger waits.
    let mut unclaimed: Vec<String> = Vec::new();
    for a in p
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Evaluate { .. }))
    {
        let Some(name) = a.tag_name(t) else { continue };
        if matches!(a, Action::Trigger { .. }) && unclaimed.iter().any(|s| s == a.step()) {
            actions.push(ActionResult {
                action: a.clone(),
                tag: name,
                outcome: "not-claimed".into(),
                error: None,
                code: 0,
            });
            continue;
        }
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
                    if matches!(a, Action::Claim { .. }) && outcome != "created" {
                        unclaimed.push(a.step().to_string());
                    }
                    result.outcome = outcome.into();
                }
                // Reported as what stopped the tick, not as this action's failure.
                Err(e) if stops_the_tick(&e) => {
                    stopped = Some(e);
                    break;
                }
                Err(e) => {
                    if matches!(a, Action::Claim { .. }) {
                        unclaimed.push(a.step().to_string());
                    }
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
pub(crate) fn push_action(
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
        &format!("{}\nby: {who}\n", a.message_for(obs.train)),
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
pub(crate) fn cancelled_since(store: &Store, obs: &Observed) -> Result<bool> {
    let name = Tag::Cancelled(obs.train).to_string();
    // A glob: a missing tag is then no error.
    store.refresh(&[format!("{name}*")])?;
    Ok(store.tag_record(&name).is_some_and(|r| {
        r.commit == obs.commit && (!store.requires_signatures() || r.signer.is_some())
    }))
}
