//! People's decisions on an environment: `freeze`, `unfreeze`, `rollback`, `unpin`, and
//! the `env` view. Each decision is a control record `env=<environment>=<k>`
//! (create-only, signed when signing is on; see `docs/tag-protocol.md`, "Environments:
//! freezes, pins and rollbacks"); the planner reads them through
//! [`crate::model::env::EnvFacts::controls`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::{Identity, PushOutcome, Store};
use crate::model::env::EnvPhase;
use crate::model::freeze::{
    hold, parse_record, record_message, Action, Control, Controls, RecordName, Window,
};
use crate::model::sdd::Sdd;
use crate::model::tag::TrainId;
use crate::model::time::rfc3339;
use crate::model::train::{message_field, short};

#[allow(unused_imports)]
use super::*;

/// An environment as the graphs declare it.
#[derive(Debug, Clone)]
pub struct EnvDecl {
    /// The environment.
    pub env: String,
    /// Its deploy step.
    pub step: String,
    /// The moving tag its deploys publish to, when the step names one.
    pub deploy_tag: Option<String>,
    /// The step's scheduled freeze windows.
    pub freeze: Vec<Window>,
}

/// The environments the graphs declare: `sdd`'s when given, else those of `trains`' graphs,
/// the newest train's declaration first.
pub fn declared(
    store: &Store,
    trains: &BTreeSet<TrainId>,
    sdd: Option<&Sdd>,
) -> BTreeMap<String, EnvDecl> {
    let mut out = BTreeMap::new();
    let mut add = |g: &Sdd| {
        for (env, step) in g.environments() {
            out.entry(env.to_string()).or_insert_with(|| EnvDecl {
                env: env.to_string(),
                step: step.name.clone(),
                deploy_tag: step.deploy_tag.clone(),
                freeze: step.freeze.clone(),
            });
        }
    };
    if let Some(g) = sdd {
        add(g);
        return out;
    }
    for &t in trains.iter().rev() {
        if let Ok(obs) = observe(store, t) {
            if let Ok(g) = train_sdd(store, &obs, None) {
                add(&g);
            }
        }
    }
    out
}

/// The declaration of `env`, or a bad-input error naming the known ones.
pub fn resolve<'a>(decls: &'a BTreeMap<String, EnvDecl>, env: &str) -> Result<&'a EnvDecl> {
    if let Some(d) = decls.get(env) {
        return Ok(d);
    }
    let known: Vec<String> = decls.keys().map(|k| format!("`{k}`")).collect();
    let hint = match crate::model::sdd::nearest(env, decls.keys().map(String::as_str)) {
        Some(n) => format!("; did you mean `{n}`?"),
        None if known.is_empty() => {
            "; no graph declares an environment (a deploy step with `environment: NAME`)".into()
        }
        None => format!("; known: {}", known.join(", ")),
    };
    Err(Error::input(format!(
        "unknown environment `{}`{hint}",
        env.escape_debug()
    )))
}

/// The control records of `env` in the cache (refresh [`RecordName::glob`] first),
/// folded. A record is trusted when signatures are not required or a listed key signed
/// it; an untrusted one still takes its number.
pub fn read_controls(store: &Store, env: &str) -> Result<Controls> {
    let mut seqs = Vec::new();
    let mut records = Vec::new();
    for r in store.tag_records(&RecordName::glob(env))? {
        let Some(n) = RecordName::parse(&r.name).filter(|n| n.env == env) else {
            continue;
        };
        seqs.push(n.seq);
        if store.requires_signatures() && r.signer.is_none() {
            continue;
        }
        let by = r.tagger.clone().unwrap_or_else(|| "unknown".into());
        if let Some(c) = parse_record(n.seq, &r.message, by, r.time.unwrap_or(0)) {
            records.push(c);
        }
    }
    Ok(Controls::fold(records, seqs))
}

pub(crate) fn refresh_controls(store: &Store, env: &str) -> Result<Controls> {
    store.refresh(&[RecordName::glob(env)])?;
    read_controls(store, env)
}

/// Write the next control record of `env` (create-only; a number taken meanwhile is
/// read again and the next one tried). Returns its name.
#[allow(clippy::too_many_arguments)]
fn write_record(
    store: &Store,
    env: &str,
    action: Action,
    reason: &str,
    until: Option<i64>,
    train: Option<TrainId>,
    commit: Option<&str>,
    by: &Identity,
    now: i64,
) -> Result<String> {
    let anchor = store.records_anchor()?;
    let msg = record_message(env, action, reason, until, train, commit, &by.to_string());
    let mut controls = read_controls(store, env)?;
    for _ in 0..5 {
        let name = RecordName {
            env: env.to_string(),
            seq: controls.last_seq.saturating_add(1),
        }
        .to_string();
        let oid = store.make_tag(&name, &anchor, &msg, by, now)?;
        match store.push_tag_create(&name, &oid)? {
            PushOutcome::Created => return Ok(name),
            PushOutcome::AlreadyExists(_) => controls = refresh_controls(store, env)?,
        }
    }
    Err(Error::Conflict(format!(
        "other writers kept taking the next record number of `{env}`; nothing was recorded, run again"
    )))
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::input(
            "`--reason` is empty; say why, it is recorded for everyone to read",
        ));
    }
    crate::model::train::check_one_line("`--reason`", reason).map_err(Error::Input)
}

/// The trains a command about environments reads: those discovery follows.
fn followed(store: &Store, sdd: Option<&Sdd>) -> Result<BTreeSet<TrainId>> {
    Ok(discover(store, crate::ops::DEFAULT_HORIZON, sdd.is_some())?.trains)
}

/// `konductor freeze`: no deploy to `env` is triggered until `unfreeze` (or `until`).
pub fn freeze(
    store: &Store,
    env: &str,
    reason: &str,
    until: Option<i64>,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<String> {
    check_reason(reason)?;
    if let Some(u) = until.filter(|u| *u <= now) {
        return Err(Error::input(format!(
            "`--until` {} is not in the future (now is {}); nothing was frozen",
            rfc3339(u),
            rfc3339(now)
        )));
    }
    let trains = followed(store, sdd)?;
    resolve(&declared(store, &trains, sdd), env)?;
    refresh_controls(store, env)?;
    write_record(
        store,
        env,
        Action::Freeze,
        reason,
        until,
        None,
        None,
        by,
        now,
    )
}

/// `konductor unfreeze`: lift the freeze by hand. `None` when `env` was not frozen by
/// hand (nothing written; scheduled windows are the graph's, not lifted here).
pub fn unfreeze(
    store: &Store,
    env: &str,
    reason: Option<&str>,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<Option<String>> {
    lift(store, env, reason, by, sdd, now, Action::Unfreeze, |c| {
        c.freeze_at(now).is_some()
    })
}

/// `konductor unpin`: let deploys go to `env` again after a rollback. `None` when it
/// was not pinned (nothing written).
pub fn unpin(
    store: &Store,
    env: &str,
    reason: Option<&str>,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<Option<String>> {
    lift(store, env, reason, by, sdd, now, Action::Unpin, |c| {
        c.pinned.is_some()
    })
}

/// Write the record `action` (an unfreeze or an unpin) when `held` says the environment's
/// controls hold what it lifts; `None` (nothing written) otherwise.
#[allow(clippy::too_many_arguments)]
fn lift(
    store: &Store,
    env: &str,
    reason: Option<&str>,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
    action: Action,
    held: impl Fn(&Controls) -> bool,
) -> Result<Option<String>> {
    if let Some(r) = reason {
        check_reason(r)?;
    }
    let trains = followed(store, sdd)?;
    resolve(&declared(store, &trains, sdd), env)?;
    let c = refresh_controls(store, env)?;
    if !held(&c) {
        return Ok(None);
    }
    write_record(
        store,
        env,
        action,
        reason.unwrap_or("(none given)"),
        None,
        None,
        None,
        by,
        now,
    )
    .map(Some)
}

/// One commit of a deploy tag's history.
#[derive(Debug, Clone, Serialize)]
pub struct DeployCommit {
    /// The commit.
    pub commit: String,
    /// The train it deployed (`train:`), when the message names one.
    pub train: Option<String>,
    /// The train's commit (`source:`).
    pub source: Option<String>,
    /// When (committer time, RFC 3339).
    pub at: String,
    /// Who (`by:`).
    pub by: Option<String>,
    /// Whether it is a rollback (`rollback: true`).
    pub rollback: bool,
    /// A rollback's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The deploy tag's history, newest first, at most `max` commits (fetched whole).
pub fn deploy_history(store: &Store, tag: &str, max: usize) -> Result<Vec<DeployCommit>> {
    Ok(super::deploy_record::deploy_chain(store, tag, max)?
        .into_iter()
        .map(|c| {
            let f = |k: &str| message_field(&c.message, k).map(str::to_string);
            let at = c.time;
            DeployCommit {
                commit: c.id,
                train: f("train"),
                source: f("source"),
                at: rfc3339(at),
                by: f("by"),
                rollback: f("rollback").as_deref() == Some("true"),
                reason: f("reason"),
            }
        })
        .collect())
}

/// How far back `rollback` looks for the train's deploy in the deploy tag's history.
pub const ROLLBACK_DEPTH: usize = 1000;

/// What `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackResult {
    /// The environment.
    pub environment: String,
    /// Its deploy tag.
    pub deploy_tag: String,
    /// The train rolled back to.
    pub train: String,
    /// The deploy commit that was the head.
    pub previous: String,
    /// The new deploy commit (the old tree, the previous head as parent).
    pub commit: String,
    /// The pin record written.
    pub record: String,
}

/// `konductor rollback`: publish what train `to` deployed to `env` as a new deploy
/// commit on top of the deploy tag's head, and pin `env` there.
///
/// The order makes a failure safe: (1) the rollback commit is built locally; (2) the
/// pin record naming it is created, so from here on no deploy goes to `env`; (3) the
/// deploy tag is moved by compare-and-swap. If (3) fails, `env` is pinned and the tag
/// did not move: `konductor env` says the rollback is not published, and running the
/// same rollback again publishes it (a new pin record, a new commit on the then head).
#[allow(clippy::too_many_arguments)]
pub fn rollback(
    store: &Store,
    env: &str,
    to: TrainId,
    reason: &str,
    by: &Identity,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<RollbackResult> {
    check_reason(reason)?;
    let trains = followed(store, sdd)?;
    let decls = declared(store, &trains, sdd);
    let decl = resolve(&decls, env)?;
    let Some(tag) = decl.deploy_tag.clone() else {
        return Err(Error::input(format!(
            "environment `{env}` has no deploy tag (its deploy step `{}` names no `deploy_tag`); there is nothing to roll back",
            decl.step
        )));
    };
    let envs = environments(store, &trains, sdd, now)?;
    if let Some(d) = envs.get(env).and_then(|f| f.deploying) {
        return Err(Error::input(format!(
            "{d} is deploying to `{env}`; roll back when it has finished (`konductor freeze --env {env}` stops further deploys)"
        )));
    }
    let history = deploy_history(store, &tag, ROLLBACK_DEPTH)?;
    let Some(head) = history.first() else {
        return Err(Error::input(format!(
            "nothing was ever deployed to `{env}` (deploy tag `{tag}` does not exist); nothing to roll back to"
        )));
    };
    let want = to.to_string();
    if head.train.as_deref() == Some(want.as_str()) {
        return Err(Error::input(format!(
            "`{env}` already runs train {to} (deploy tag `{tag}` at `{}`)",
            short(&head.commit)
        )));
    }
    let Some(old) = history
        .iter()
        .find(|c| c.train.as_deref() == Some(want.as_str()))
    else {
        let seen: BTreeSet<&str> = history.iter().filter_map(|c| c.train.as_deref()).collect();
        let seen: Vec<&str> = seen.into_iter().collect();
        return Err(Error::input(format!(
            "train {to} never deployed to `{env}` (deploy tag `{tag}`); trains it ran: {}",
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        )));
    };
    let source = old.source.clone().unwrap_or_default();
    let msg = format!(
        "rollback {tag} to train {to}\n\ntrain: {to}\nsource: {source}\nrollback: true\nfrom: {}\nby: {by}\nreason: {reason}\n",
        head.commit
    );
    let commit = store.commit_tree_of(&old.commit, Some(&head.commit), &msg, by, now)?;
    refresh_controls(store, env)?;
    let record = write_record(
        store,
        env,
        Action::Pin,
        reason,
        None,
        Some(to),
        Some(&commit),
        by,
        now,
    )?;
    store
        .push_ref_cas(&format!("refs/tags/{tag}"), &commit, Some(&head.commit))
        .map_err(|e| match e {
            Error::Conflict(m) => Error::Conflict(format!(
                "{m}; `{env}` is pinned to {to} ({record}) but the rollback is not published: run the same rollback again"
            )),
            e => e,
        })?;
    Ok(RollbackResult {
        environment: env.to_string(),
        deploy_tag: tag,
        train: want,
        previous: head.commit.clone(),
        commit,
        record,
    })
}

/// A freeze or pin in force, as the view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    /// What the planner says about a deploy here now.
    pub reason: String,
    /// When it ends (RFC 3339), when known.
    pub until: Option<String>,
    /// Who froze or pinned (absent for a scheduled window).
    pub by: Option<String>,
    /// When (RFC 3339).
    pub at: Option<String>,
    /// The train a pin holds (pins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    /// Whether a pin's rollback commit is what the deploy tag holds (pins only): `false`
    /// when the rollback's compare-and-swap failed; run the rollback again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,
}

/// The train an environment runs now.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    /// `N.P`.
    pub train: String,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// Who deployed it.
    pub by: Option<String>,
    /// The deploy commit (when the environment has a deploy tag).
    pub commit: Option<String>,
    /// Whether it got there by a rollback.
    pub rollback: bool,
}

/// One environment in `konductor env`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvView {
    /// The environment.
    pub environment: String,
    /// Its deploy step.
    pub step: String,
    /// Its deploy tag.
    pub deploy_tag: Option<String>,
    /// The train there now.
    pub current: Option<Current>,
    /// The train deploying there now.
    pub deploying: Option<String>,
    /// Trains ready to deploy there, newest first.
    pub waiting: Vec<String>,
    /// The freeze in force now (by hand or a window), if any.
    pub frozen: Option<HoldView>,
    /// The pin in force (a rollback), if any.
    pub pinned: Option<HoldView>,
    /// The scheduled freeze windows of the deploy step.
    pub freeze_windows: Vec<String>,
    /// The last deploys, newest first, rollbacks marked.
    pub deploys: Vec<DeployCommit>,
}

/// How many deploys `konductor env` lists per environment.
pub const VIEW_DEPLOYS: usize = 10;

/// `konductor env`: every declared environment (or the one named), as every reader
/// sees it. The board's environment cards and `serve`'s `/api/environments` use it.
pub fn env_view(
    store: &Store,
    only: Option<&str>,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<Vec<EnvView>> {
    let trains = followed(store, sdd)?;
    env_view_of(store, &trains, only, sdd, now)
}

/// [`env_view`] over trains the caller already discovered.
pub fn env_view_of(
    store: &Store,
    trains: &BTreeSet<TrainId>,
    only: Option<&str>,
    sdd: Option<&Sdd>,
    now: i64,
) -> Result<Vec<EnvView>> {
    let decls = declared(store, trains, sdd);
    if let Some(e) = only {
        resolve(&decls, e)?;
    }
    let facts = environments(store, trains, sdd, now)?;
    view(store, &decls, &facts, only, now)
}

/// [`env_view`] of the trains a [`crate::ops::status::status_list`] read, with the
/// environments' facts it planned them with: no second discovery or fact computation.
pub fn env_view_of_list(
    store: &Store,
    list: &crate::ops::status::StatusList,
    now: i64,
) -> Result<Vec<EnvView>> {
    let decls = declared(store, &list.followed, None);
    view(store, &decls, &list.environments, None, now)
}

fn view(
    store: &Store,
    decls: &BTreeMap<String, EnvDecl>,
    facts: &crate::model::env::Environments,
    only: Option<&str>,
    now: i64,
) -> Result<Vec<EnvView>> {
    let mut out = Vec::new();
    for d in decls.values().filter(|d| only.is_none_or(|o| o == d.env)) {
        let f = match facts.get(&d.env) {
            Some(f) => f.clone(),
            // No followed train deploys here: the records alone.
            None => crate::model::env::EnvFacts {
                controls: refresh_controls(store, &d.env)?,
                ..Default::default()
            },
        };
        let deploys = match &d.deploy_tag {
            Some(t) => deploy_history(store, t, VIEW_DEPLOYS)?,
            None => vec![],
        };
        let current = match deploys.first() {
            Some(h) => h.train.clone().map(|train| Current {
                train,
                since: Some(h.at.clone()),
                by: h.by.clone(),
                commit: Some(h.commit.clone()),
                rollback: h.rollback,
            }),
            None => f
                .trains
                .iter()
                .rev()
                .find(|(_, p)| **p == EnvPhase::Deployed)
                .map(|(t, _)| Current {
                    train: t.to_string(),
                    since: None,
                    by: None,
                    commit: None,
                    rollback: false,
                }),
        };
        let pinned = f.controls.pinned.as_ref().map(|p: &Control| HoldView {
            reason: hold(&d.env, &f.controls, &[], now)
                .map(|h| h.0)
                .unwrap_or_default(),
            until: None,
            by: Some(p.by.clone()),
            at: Some(rfc3339(p.at)),
            train: p.train.map(|t| t.to_string()),
            published: Some(
                p.commit.is_some() && deploys.first().map(|h| &h.commit) == p.commit.as_ref(),
            ),
        });
        let unpinned = Controls {
            pinned: None,
            ..f.controls.clone()
        };
        let frozen = hold(&d.env, &unpinned, &d.freeze, now).map(|(reason, until)| {
            let hand = unpinned
                .freeze_at(now)
                .filter(|_| reason.contains(" frozen by "));
            HoldView {
                reason,
                until: until.map(rfc3339),
                by: hand.map(|c| c.by.clone()),
                at: hand.map(|c| rfc3339(c.at)),
                train: None,
                published: None,
            }
        });
        let mut waiting: Vec<String> = f
            .trains
            .iter()
            .rev()
            .filter(|(_, p)| **p == EnvPhase::Ready)
            .map(|(t, _)| t.to_string())
            .collect();
        waiting.dedup();
        out.push(EnvView {
            environment: d.env.clone(),
            step: d.step.clone(),
            deploy_tag: d.deploy_tag.clone(),
            current,
            deploying: f.deploying.map(|t| t.to_string()),
            waiting,
            frozen,
            pinned,
            freeze_windows: d.freeze.iter().map(|w| w.text.clone()).collect(),
            deploys,
        });
    }
    Ok(out)
}
