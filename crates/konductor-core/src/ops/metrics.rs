//! `konductor metrics` (and `/metrics`): read the trains and the environment's deploy tag,
//! then compute every figure with the pure [`crate::model::metrics::compute`].

use crate::error::{Error, Result};
use crate::git::store::Store;
use crate::model::metrics::{
    compute, environment_names, DeployCommit, Metrics, MetricsOptions, TrainInput,
};

#[allow(unused_imports)]
use super::*;

/// How many of the newest train numbers `konductor metrics` reads by default.
pub const DEFAULT_METRICS_HORIZON: u32 = 50;

/// How many deploy commits of a deploy tag's history are read, newest first.
pub const MAX_DEPLOY_COMMITS: usize = 10_000;

/// What `konductor metrics` asks for.
#[derive(Debug, Clone)]
pub struct MetricsRequest {
    /// How many of the newest train numbers to read (as `status --horizon`).
    pub horizon: u32,
    /// The environment of the DORA figures.
    pub env: String,
    /// The window, in seconds back from `now`.
    pub window_secs: i64,
    /// Now, seconds since the epoch.
    pub now: i64,
}

/// Discover and plan the newest trains (as `status` does), then compute the figures.
/// Trains that cannot be read (no `sdd.yaml` at their commit, say) take no part.
pub fn metrics(store: &Store, req: &MetricsRequest) -> Result<Metrics> {
    let found = discover(store, req.horizon.max(1), false)?;
    let envs = environments(store, &found.trains, None, req.now)?;
    let planned: Vec<Planned> = found
        .trains
        .iter()
        .filter_map(|&t| plan_train_in(store, t, None, None, req.now, &envs).ok())
        .collect();
    metrics_of(store, &planned, req)
}

/// The figures of trains a reader already planned (`status`, the server): reads only
/// the committer times of their commits and the environment's deploy tag. An
/// environment no graph names is refused, unless there are no trains at all.
pub fn metrics_of(store: &Store, planned: &[Planned], req: &MetricsRequest) -> Result<Metrics> {
    let times: Vec<Option<i64>> = planned
        .iter()
        .map(|p| {
            store
                .ensure_commit(&p.obs.commit)
                .ok()
                .and_then(|c| store.commit_time(&c))
        })
        .collect();
    let inputs: Vec<TrainInput<'_>> = planned
        .iter()
        .zip(times)
        .map(|(p, commit_time)| TrainInput {
            obs: &p.obs,
            sdd: &p.sdd,
            plan: &p.plan,
            commit_time,
        })
        .collect();
    check_env(&inputs, &req.env)?;
    let mut tags: Vec<&str> = inputs
        .iter()
        .flat_map(|t| t.sdd.environments())
        .filter(|(e, _)| *e == req.env)
        .filter_map(|(_, s)| s.deploy_tag.as_deref())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let several = tags.len() > 1;
    let mut commits = Vec::new();
    for tag in tags {
        commits.extend(deploy_commits(store, tag)?);
    }
    // One tag's history is in its own order; several are merged by time.
    if several {
        commits.sort_by_key(|c| c.at);
    }
    Ok(compute(
        &inputs,
        &commits,
        &MetricsOptions {
            env: req.env.clone(),
            now: req.now,
            window_secs: req.window_secs,
        },
    ))
}

/// Refuse an environment that no train's graph deploys to (none to refuse without trains).
pub fn check_env(inputs: &[TrainInput<'_>], env: &str) -> Result<()> {
    let names = environment_names(inputs);
    if inputs.is_empty() || names.iter().any(|n| n == env) {
        return Ok(());
    }
    if names.is_empty() {
        return Err(Error::input(format!(
            "unknown environment `{env}`: the trains' graphs name no environment; give a deploy step `environment: {env}` (docs/sdd.md#environments)"
        )));
    }
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::input(format!(
        "unknown environment `{env}`: no train's graph deploys to it; the environments are {list}"
    )))
}

/// The commits under a deploy tag, oldest first (none when the tag does not exist yet).
pub fn deploy_commits(store: &Store, tag: &str) -> Result<Vec<DeployCommit>> {
    let mut out: Vec<DeployCommit> =
        super::deploy_record::deploy_chain(store, tag, MAX_DEPLOY_COMMITS)?
            .into_iter()
            .map(|c| DeployCommit::from_message(&c.id, c.time, &c.message))
            .collect();
    out.reverse();
    Ok(out)
}
