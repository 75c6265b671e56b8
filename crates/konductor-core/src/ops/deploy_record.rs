//! Deploy records: the deploy commits under an environment's deploy tag, read back. The
//! commit a train deployed is what its verification must check (not whatever the moving
//! tag points to when the check runs): `konductor deploy-record`.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::Store;
use crate::model::tag::TrainId;
use crate::model::train::{message_field, short};

#[allow(unused_imports)]
use super::*;

/// How far down a deploy tag's history a record is looked for.
pub const HISTORY_LIMIT: usize = 10_000;

/// One deploy commit under a deploy tag, from its message (`locomotive
/// publish-manifests` and rollbacks write the fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployRecord {
    /// The deploy tag.
    pub tag: String,
    /// The deploy commit (what Argo CD syncs).
    pub commit: String,
    /// The train it deployed (`train:`), when the message names one.
    #[serde(serialize_with = "train_as_text")]
    pub train: Option<TrainId>,
    /// The train's commit (`source:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The trigger of the deploy step (`trigger:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Who published it (`by:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Whether it is a rollback commit (`rollback: true`).
    pub rollback: bool,
    /// The commit time, seconds since the epoch.
    pub time: i64,
}

fn train_as_text<S: serde::Serializer>(
    t: &Option<TrainId>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

impl DeployRecord {
    /// Read a deploy commit's fields from its message.
    pub fn from_commit(tag: &str, commit: &str, message: &str, time: i64) -> DeployRecord {
        let field = |k: &str| message_field(message, k).map(str::to_string);
        DeployRecord {
            tag: tag.to_string(),
            commit: commit.to_string(),
            train: field("train").and_then(|v| v.parse().ok()),
            source: field("source"),
            trigger: field("trigger"),
            by: field("by"),
            rollback: field("rollback").is_some_and(|v| v == "true"),
            time,
        }
    }
}

/// The commits under the deploy tag `tag`, newest first (at most `limit`, first parents,
/// fetched whole); empty when the tag does not exist on the remote. Every reader of a
/// deploy history (this module, the `env` view, notifications, metrics) starts here.
pub fn deploy_chain(
    store: &Store,
    tag: &str,
    limit: usize,
) -> Result<Vec<crate::git::store::ChainCommit>> {
    let refname = format!("refs/tags/{tag}");
    if !store.fetch_ref(&refname)? {
        return Ok(Vec::new());
    }
    let Some(head) = store.ref_target(&refname) else {
        return Ok(Vec::new());
    };
    let head = store.ensure_commit(&head)?;
    Ok(store.first_parent_chain(&head, limit))
}

/// The deploy history under `tag`, newest first (at most `limit` commits); empty when the
/// tag does not exist on the remote.
pub fn deploy_history(store: &Store, tag: &str, limit: usize) -> Result<Vec<DeployRecord>> {
    Ok(deploy_chain(store, tag, limit)?
        .into_iter()
        .map(|c| DeployRecord::from_commit(tag, &c.id, &c.message, c.time))
        .collect())
}

/// The newest record of a deploy (not a rollback) of `train` in `history`, newest first.
pub fn record_of(history: &[DeployRecord], train: TrainId) -> Option<&DeployRecord> {
    history
        .iter()
        .find(|r| r.train == Some(train) && !r.rollback)
}

/// Where to look: an environment (its deploy tag from the train's graph) or a tag.
#[derive(Debug, Clone)]
pub enum RecordOf {
    /// An environment of the train's graph.
    Env(String),
    /// A deploy tag given as is.
    Tag(String),
}

/// The deploy commit `train` published for an environment (or under a tag): the newest
/// commit of the deploy tag's history whose `train:` is `train`, rollbacks left out.
pub fn deploy_record(store: &Store, what: &RecordOf, train: TrainId) -> Result<DeployRecord> {
    let tag = match what {
        RecordOf::Tag(t) => {
            if let Some(why) = deploy_tag_problem(t) {
                return Err(Error::input(format!("`{t}` cannot be a deploy tag: {why}")));
            }
            t.clone()
        }
        RecordOf::Env(e) => {
            refresh_train(store, train)?;
            let obs = observe(store, train)?;
            let sdd = train_sdd(store, &obs, None)?;
            let envs = sdd.environments();
            let Some((_, step)) = envs.iter().find(|(name, _)| name == e) else {
                let known: Vec<String> = envs.iter().map(|(n, _)| format!("`{n}`")).collect();
                let hint = match crate::model::sdd::nearest(e, envs.iter().map(|(n, _)| *n)) {
                    Some(n) => format!("; did you mean `{n}`?"),
                    None if known.is_empty() => "; it declares none".to_string(),
                    None => format!("; its environments: {}", known.join(", ")),
                };
                return Err(Error::input(format!(
                    "unknown environment `{e}`: train {train}'s `sdd.yaml` has no step with `environment: {e}`{hint}"
                )));
            };
            step.deploy_tag.clone().ok_or_else(|| {
                Error::input(format!(
                    "step `{}` deploys to `{e}` but has no `deploy_tag` in train {train}'s `sdd.yaml`; pass `--tag TAG`",
                    step.name
                ))
            })?
        }
    };
    let history = deploy_history(store, &tag, HISTORY_LIMIT)?;
    if let Some(r) = record_of(&history, train) {
        return Ok(r.clone());
    }
    let now = match history.first() {
        Some(h) => format!(
            "it holds {} ({})",
            h.train
                .map_or_else(|| "no train".to_string(), |t| format!("train {t}")),
            short(&h.commit)
        ),
        None => "it does not exist on the remote".to_string(),
    };
    Err(Error::input(format!(
        "train {train} has no deploy commit under `{tag}` ({} commit{} read; {now})",
        history.len(),
        if history.len() == 1 { "" } else { "s" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_fields_come_from_the_message_and_rollbacks_are_not_deploys() {
        let deploy = DeployRecord::from_commit(
            "staging-k8s",
            "c2",
            "deploy train 2.0 to staging-k8s\n\ntrain: 2.0\nsource: abc\ntrigger: release=2.0=d.1\nby: CI <ci@x>\n",
            5,
        );
        assert_eq!(deploy.train, Some(TrainId::new(2, 0)));
        assert_eq!(deploy.trigger.as_deref(), Some("release=2.0=d.1"));
        assert!(!deploy.rollback);
        let rollback = DeployRecord::from_commit(
            "staging-k8s",
            "c3",
            "rollback staging-k8s to 1.0\n\ntrain: 1.0\nsource: def\nrollback: true\n",
            6,
        );
        assert!(rollback.rollback);
        let first = DeployRecord::from_commit("staging-k8s", "c1", "deploy\n\ntrain: 1.0\n", 1);
        let history = vec![rollback, deploy, first];
        assert_eq!(
            record_of(&history, TrainId::new(1, 0)).map(|r| r.commit.as_str()),
            Some("c1")
        );
        assert_eq!(
            record_of(&history, TrainId::new(2, 0)).map(|r| r.commit.as_str()),
            Some("c2")
        );
        assert_eq!(record_of(&history, TrainId::new(3, 0)), None);
    }
}
