//! What is in a train (`konductor diff`): resolve trains and environments to commits,
//! fetch the history between them ([`crate::git::history`]), and describe it with the
//! pure [`crate::model::diff`].

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::Store;
use crate::model::diff::{
    flag_gates, parse_deploy_message, parse_name_status, pull_requests, relation, Bounded, Commit,
    Deployed, FileChange, PullRequest, Relation,
};
use crate::model::env::env_name_problem;
use crate::model::sdd::Sdd;
use crate::model::tag::{Tag, TrainId};

#[allow(unused_imports)]
use super::*;

/// One end of a diff, resolved to a commit.
#[derive(Debug, Clone, Serialize)]
pub struct End {
    /// What the user gave: `N.P` or an environment name.
    pub spec: String,
    /// The train.
    #[serde(serialize_with = "display")]
    pub train: TrainId,
    /// The train's commit.
    pub commit: String,
    /// The environment, when the end was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The environment's deploy tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_tag: Option<String>,
    /// Whether the environment's head deploy commit is a rollback.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

impl End {
    /// `train 1.0` or `production (train 1.0)`, for messages.
    pub fn describe(&self) -> String {
        match &self.environment {
            Some(e) => format!("`{e}` (train {})", self.train),
            None => format!("train {}", self.train),
        }
    }
}

fn display<S: serde::Serializer>(t: &TrainId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// What B brings over A.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// A.
    pub from: End,
    /// B.
    pub to: End,
    /// How B's history relates to A's.
    pub relation: Relation,
    /// The limit each list was cut at.
    pub limit: usize,
    /// How many commits B has that A lacks.
    pub commits_total: usize,
    /// The first `limit` of them, newest first.
    pub commits: Vec<Commit>,
    /// How many pull requests those commits bring.
    pub pull_requests_total: usize,
    /// The first `limit` of them.
    pub pull_requests: Vec<PullRequest>,
    /// How many files differ between A's tree and B's.
    pub files_total: usize,
    /// The first `limit` of them, flagged with the gates they trigger.
    pub files: Vec<FileChange>,
    /// What the fetch cost.
    pub fetch: FetchInfo,
}

/// What the history fetch cost.
#[derive(Debug, Clone, Serialize)]
pub struct FetchInfo {
    /// Bytes of objects fetched.
    pub bytes: u64,
    /// Whether the server left file contents out.
    pub filtered: bool,
    /// `shallow-exclude` (only the range) or `full` (both histories).
    pub method: &'static str,
}

/// Where an environment stands: its deploy tag's head commit.
#[derive(Debug, Clone, Serialize)]
pub struct EnvHead {
    /// The environment.
    pub environment: String,
    /// Its deploy tag.
    pub deploy_tag: String,
    /// What the head deploy commit says.
    pub deployed: Deployed,
}

/// The graph that names the environments: `sdd.yaml` of the newest readable train.
fn newest_graph(store: &Store) -> Result<(TrainId, Sdd)> {
    let found = discover(store, DEFAULT_HORIZON, false)?;
    for t in found.trains.iter().rev() {
        if let Ok(obs) = observe(store, *t) {
            if let Ok(sdd) = train_sdd(store, &obs, None) {
                return Ok((*t, sdd));
            }
        }
    }
    Err(Error::input(format!(
        "no train on `{}` has a readable `sdd.yaml`, so no environment is known",
        store.remote().url
    )))
}

/// The deploy tag of environment `env` in `graph`, or an error naming the known ones.
pub fn deploy_tag_of(graph: &Sdd, env: &str, train: TrainId) -> Result<String> {
    let envs = graph.environments();
    match envs.iter().find(|(e, _)| *e == env) {
        Some((_, step)) => step.deploy_tag.clone().ok_or_else(|| {
            Error::input(format!(
                "environment `{env}` has no `deploy_tag` in the graph of train {train}, so what it runs is not known"
            ))
        }),
        None => {
            let known: Vec<String> = envs.iter().map(|(e, _)| format!("`{e}`")).collect();
            Err(Error::input(if known.is_empty() {
                format!("unknown train or environment `{env}`: the graph of train {train} declares no environment; give a train as `N.P`")
            } else {
                format!(
                    "unknown train or environment `{env}`; the graph of train {train} declares {}",
                    known.join(", ")
                )
            }))
        }
    }
}

/// What runs in environment `env`: the train and commit its deploy tag's head commit
/// names (a rollback's too). `None` when the deploy tag does not exist yet.
pub fn deployed(store: &Store, env: &str) -> Result<Option<EnvHead>> {
    let (newest, graph) = newest_graph(store)?;
    deployed_in(store, &graph, newest, env)
}

/// [`deployed`], with the deploy tag taken from `graph` (train `train`'s).
pub fn deployed_in(
    store: &Store,
    graph: &Sdd,
    train: TrainId,
    env: &str,
) -> Result<Option<EnvHead>> {
    let tag = deploy_tag_of(graph, env, train)?;
    let refname = format!("refs/tags/{tag}");
    if !store.fetch_ref(&refname)? {
        return Ok(None);
    }
    let head = store
        .ref_target(&refname)
        .ok_or_else(|| Error::Remote(format!("deploy tag `{tag}` vanished from the cache")))?;
    let commit = store.ensure_commit(&head)?;
    let message = store.commit_message(&commit).unwrap_or_default();
    let deployed = parse_deploy_message(&message).ok_or_else(|| {
        Error::input(format!(
            "the head of deploy tag `{tag}` of environment `{env}` ({}) names no `train:` and `source:`; was it moved by hand?",
            crate::model::train::short(&commit)
        ))
    })?;
    Ok(Some(EnvHead {
        environment: env.to_string(),
        deploy_tag: tag,
        deployed,
    }))
}

/// Resolve `spec`: a train `N.P`, or an environment name (what its deploy tag says runs
/// there).
pub fn resolve(store: &Store, spec: &str) -> Result<End> {
    let spec = spec.trim();
    match spec.parse::<TrainId>() {
        Ok(t) => {
            return Ok(End {
                spec: spec.to_string(),
                train: t,
                commit: train_commit(store, t)?,
                environment: None,
                deploy_tag: None,
                rollback: false,
            })
        }
        Err(e) if spec.contains('.') && spec.starts_with(|c: char| c.is_ascii_digit()) => {
            return Err(Error::input(format!(
                "invalid train `{spec}`: {}",
                e.reason
            )))
        }
        Err(_) => {}
    }
    if let Some(why) = env_name_problem(spec) {
        return Err(Error::input(format!(
            "`{spec}` is neither a train (`N.P`) nor an environment name: {why}"
        )));
    }
    let head = deployed(store, spec)?.ok_or_else(|| {
        Error::input(format!(
            "nothing is deployed to `{spec}` yet: its deploy tag does not exist on `{}`",
            store.remote().url
        ))
    })?;
    Ok(env_end(head))
}

fn env_end(head: EnvHead) -> End {
    End {
        spec: head.environment.clone(),
        train: head.deployed.train,
        commit: head.deployed.source.clone(),
        environment: Some(head.environment),
        deploy_tag: Some(head.deploy_tag),
        rollback: head.deployed.rollback,
    }
}

/// The commit of train `t` (its tags, or gc's archive).
fn train_commit(store: &Store, t: TrainId) -> Result<String> {
    refresh_train(store, t)?;
    match observe(store, t) {
        Ok(obs) => Ok(obs.commit),
        Err(Error::Input(msg)) => match crate::ops::archive::archived(store, t)? {
            Some(a) => crate::model::train::Observed::from_records(t, &a.tags)
                .map(|o| o.commit)
                .ok_or(Error::Input(msg)),
            None => Err(Error::Input(msg)),
        },
        Err(e) => Err(e),
    }
}

/// What `to` brings over `from`: commits, pull requests and files, each list cut at
/// `limit`; files flagged with the gates of `to`'s graph they trigger.
pub fn ahead(store: &Store, from: &End, to: &End, limit: usize) -> Result<DiffReport> {
    // Cut the range at A's train tag, when the remote still has it on A's commit.
    let a_tag = Tag::Train(from.train).to_string();
    if store.tag_record(&a_tag).is_none() {
        // An environment's train may not be followed here: read its tags (a train that
        // is gone from the remote is left without a ref, and the fetch says why).
        let _ = refresh_train(store, from.train);
    }
    let a_ref = store
        .tag_record(&a_tag)
        .filter(|r| r.commit == from.commit)
        .map(|_| format!("refs/tags/{a_tag}"));
    let h = store.history(
        &from.commit,
        a_ref.as_deref(),
        &to.commit,
        &from.describe(),
        &to.describe(),
    )?;
    let mut files = parse_name_status(&h.name_status);
    if let Some(graph) = graph_of(store, to) {
        let steps: Vec<(String, Vec<String>)> = graph
            .steps()
            .iter()
            .filter(|s| !s.if_changed.is_empty())
            .map(|s| (s.name.clone(), s.if_changed.clone()))
            .collect();
        flag_gates(&mut files, &steps).map_err(Error::Input)?;
    }
    let rel = relation(&from.commit, &to.commit, &h.commits, h.boundaries);
    let prs = Bounded::new(pull_requests(&h.commits), limit);
    let commits = Bounded::new(h.commits, limit);
    let files = Bounded::new(files, limit);
    Ok(DiffReport {
        from: from.clone(),
        to: to.clone(),
        relation: rel,
        limit,
        commits_total: commits.total,
        commits: commits.items,
        pull_requests_total: prs.total,
        pull_requests: prs.items,
        files_total: files.total,
        files: files.items,
        fetch: FetchInfo {
            bytes: h.fetched_bytes,
            filtered: h.filtered,
            method: h.method,
        },
    })
}

/// The graph of train `end`, if readable.
fn graph_of(store: &Store, end: &End) -> Option<Sdd> {
    let obs = observe(store, end.train).ok()?;
    train_sdd(store, &obs, None).ok()
}

/// `konductor diff A B`: resolve both ends and compare them.
pub fn diff(store: &Store, a: &str, b: &str, limit: usize) -> Result<DiffReport> {
    let from = resolve(store, a)?;
    let to = resolve(store, b)?;
    ahead(store, &from, &to, limit)
}

/// What a train brings (`status --train`): over the train before it, and over what runs in
/// production (the graph's last environment). A side that cannot be told says why.
#[derive(Debug, Clone, Serialize)]
pub struct Brings {
    /// Over the newest older train.
    pub previous: Side,
    /// Over the last environment of the train's graph.
    pub production: Side,
}

/// One side of [`Brings`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Side {
    /// The comparison.
    Diff(Box<DiffReport>),
    /// Why there is none.
    None {
        /// Why.
        note: String,
    },
}

/// What train `t` (at `commit`, with graph `graph`) brings over the train before it and
/// over production; lists cut at `limit`.
pub fn brings(store: &Store, t: TrainId, graph: &Sdd, limit: usize) -> Brings {
    let me = match resolve(store, &t.to_string()) {
        Ok(e) => e,
        Err(e) => {
            let note = e.to_string();
            return Brings {
                previous: Side::None { note: note.clone() },
                production: Side::None { note },
            };
        }
    };
    let side = |r: Result<Option<End>>, none: &str| match r {
        Ok(Some(from)) => match ahead(store, &from, &me, limit) {
            Ok(d) => Side::Diff(Box::new(d)),
            Err(e) => Side::None {
                note: e.to_string(),
            },
        },
        Ok(None) => Side::None {
            note: none.to_string(),
        },
        Err(e) => Side::None {
            note: e.to_string(),
        },
    };
    let previous = side(previous_train(store, t), "no earlier train");
    let prod = graph.environments().last().map(|(e, _)| e.to_string());
    let production = match prod {
        Some(env) => side(
            deployed_in(store, graph, t, &env).map(|h| h.map(env_end)),
            &format!("nothing is deployed to `{env}` yet"),
        ),
        None => Side::None {
            note: "the graph declares no environment".into(),
        },
    };
    Brings {
        previous,
        production,
    }
}

/// The newest train older than `t` (from the cache, else the remote's newest trains).
fn previous_train(store: &Store, t: TrainId) -> Result<Option<End>> {
    let mut trains = cached_trains(store)?;
    if !trains.iter().any(|x| *x < t) {
        trains = discover(store, DEFAULT_HORIZON, false)?.trains;
    }
    for p in trains.into_iter().rev().filter(|x| *x < t) {
        if let Ok(e) = resolve(store, &p.to_string()) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// What a train brings, as `status --train N.P --json` and `/api/trains/{N.P}` show it:
/// each side without `fetch` (what a fetch cost varies with the server's packing; it is
/// not a fact of the train).
pub fn brings_json(b: &Brings) -> serde_json::Value {
    let mut c = serde_json::to_value(b).unwrap_or_default();
    for side in ["previous", "production"] {
        if let Some(o) = c.get_mut(side).and_then(|x| x.as_object_mut()) {
            o.remove("fetch");
        }
    }
    c
}

/// A train report followed by what the train brings ([`brings_json`]), its fields in
/// their order: `status --train N.P --json` and `/api/trains/{N.P}`.
#[derive(Debug, Serialize)]
pub struct WithChanges<'a> {
    /// The report.
    #[serde(flatten)]
    pub report: &'a crate::ops::status::TrainReport,
    /// What the train brings.
    pub changes: serde_json::Value,
}
