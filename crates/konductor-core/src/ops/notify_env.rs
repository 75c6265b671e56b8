//! The environment side of notifications: `env.rolled_back` from the rollback commits of
//! the deploy tags, `env.frozen` from the freeze records `env=<environment>=<k>`, and the
//! pull-request comments of a production deploy (`github`), from what `konductor diff`
//! finds between the previous production deploy and this one. [`super::notify`] delivers
//! them like every other event. See `docs/notifications.md`.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::git::store::Store;
use crate::model::freeze::{parse_record, Action, RecordName};
use crate::model::notify::{cut, event_id, Event, EventKind, MAX_MESSAGE, PAYLOAD_VERSION};
use crate::model::tag::TrainId;
use crate::model::time::{parse_rfc3339, rfc3339};
use crate::model::train::short;
use crate::ops::diff::{ahead, End};
use crate::ops::env_control::{deploy_history, DeployCommit};

/// How many of a deploy tag's newest commits are read for rollbacks, and to anchor a
/// freeze to the train that ran when it was made.
pub const HISTORY_SCAN: usize = 20;

/// How far back a production deploy's previous deploy is looked for.
pub const PREVIOUS_DEPLOY_SCAN: usize = 200;

/// At most this many pull requests are commented on per production deploy (the newest
/// first; the others are left out and the run says so).
pub const MAX_PR_COMMENTS: usize = 50;

/// An environment as the followed trains' graphs declare it.
#[derive(Debug, Clone)]
pub struct EnvDecl {
    /// Its deploy step.
    pub step: String,
    /// Its deploy tag, when the step names one.
    pub deploy_tag: Option<String>,
}

/// A train the run follows, as the freeze events need it.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The train.
    pub train: TrainId,
    /// Its commit.
    pub commit: String,
    /// When it was opened (seconds), if known.
    pub opened: Option<i64>,
    /// The environments its graph declares.
    pub envs: Vec<String>,
}

/// A blank event of `train` at `commit`.
fn blank(
    kind: EventKind,
    train: TrainId,
    subject: &str,
    commit: &str,
    remote: &str,
    url: Option<&str>,
) -> Event {
    let t = train.to_string();
    Event {
        version: PAYLOAD_VERSION,
        event: kind,
        id: event_id(&t, kind, Some(subject)),
        train: t,
        step: None,
        attempt: None,
        rerun: None,
        environment: None,
        commit: commit.to_string(),
        url: url.map(str::to_string),
        message: String::new(),
        command: None,
        at: None,
        by: None,
        reason: None,
        until: None,
        remote: remote.to_string(),
        status: None,
        at_secs: None,
        pull_request: None,
    }
}

fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The train and commit a deploy commit names, when it names both well.
fn deployed(c: &DeployCommit) -> Option<(TrainId, String)> {
    let t = c.train.as_deref()?.parse::<TrainId>().ok()?;
    let s = c.source.as_deref().filter(|s| is_commit_id(s))?;
    Some((t, s.to_string()))
}

/// The `env.rolled_back` and `env.frozen` events of the environments `decls`, each with
/// the train whose markers record it (`train` and `commit` of the event):
///
/// - a rollback: the train rolled back to (the deploy commit's `train:` and `source:`),
///   one event per rollback commit among the deploy tag's [`HISTORY_SCAN`] newest;
/// - a freeze: the train the environment ran when the freeze was recorded (the newest
///   deploy commit at or before it), else the newest followed train declaring the
///   environment opened at or before it; a freeze with neither is not announced. Both
///   choices are fixed once made, so every tick computes the same event id.
///
/// Freeze records are read from the cache (the environment facts refreshed them);
/// records that are not trusted (unsigned where signatures are required) make no event.
/// Problems reading a deploy tag are returned, not raised: they cost that environment's
/// events only.
pub fn env_events(
    store: &Store,
    decls: &BTreeMap<String, EnvDecl>,
    followed: &[Followed],
    remote: &str,
    board_url: Option<&str>,
) -> (Vec<Event>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (env, decl) in decls {
        let history = match &decl.deploy_tag {
            Some(tag) => match deploy_history(store, tag, HISTORY_SCAN) {
                Ok(h) => h,
                Err(e) => {
                    errors.push(format!("environment `{env}`: deploy tag `{tag}`: {e}"));
                    vec![]
                }
            },
            None => vec![],
        };
        for c in history.iter().filter(|c| c.rollback) {
            let Some((train, source)) = deployed(c) else {
                continue;
            };
            let mut e = blank(
                EventKind::EnvRolledBack,
                train,
                &format!("{env}.{}", short(&c.commit)),
                &source,
                remote,
                board_url,
            );
            let by = c.by.clone().unwrap_or_else(|| "someone".into());
            let why = c
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            e.message = cut(
                &format!(
                    "`{env}` was rolled back to train {train} by {by}{why}; deploys to `{env}` wait for `konductor unpin --env {env}`"
                ),
                MAX_MESSAGE,
            );
            e.environment = Some(env.clone());
            e.step = Some(decl.step.clone());
            e.by = c.by.clone();
            e.reason = c.reason.clone();
            e.at_secs = parse_rfc3339(&c.at);
            e.at = e.at_secs.map(rfc3339);
            out.push(e);
        }
        let records = match store.tag_records(&RecordName::glob(env)) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("environment `{env}`: records: {e}"));
                continue;
            }
        };
        for r in records {
            let Some(name) = RecordName::parse(&r.name).filter(|n| &n.env == env) else {
                continue;
            };
            if store.requires_signatures() && r.signer.is_none() {
                continue;
            }
            let by = r.tagger.clone().unwrap_or_else(|| "someone".into());
            let at = r.time.unwrap_or(0);
            let Some(c) = parse_record(name.seq, &r.message, by, at) else {
                continue;
            };
            if c.action != Action::Freeze {
                continue;
            }
            // Newest first: the first deploy at or before the freeze ran then.
            let anchor = history
                .iter()
                .filter(|d| parse_rfc3339(&d.at).is_some_and(|t| t <= at))
                .find_map(deployed)
                .or_else(|| {
                    followed
                        .iter()
                        .filter(|f| f.envs.contains(env) && f.opened.is_some_and(|o| o <= at))
                        .max_by_key(|f| f.train)
                        .map(|f| (f.train, f.commit.clone()))
                });
            let Some((train, commit)) = anchor else {
                continue;
            };
            let mut e = blank(
                EventKind::EnvFrozen,
                train,
                &format!("{env}.{}", name.seq),
                &commit,
                remote,
                board_url,
            );
            let end = c
                .until
                .map(|u| format!(" until {}", rfc3339(u)))
                .unwrap_or_default();
            e.message = cut(
                &format!(
                    "`{env}` was frozen by {}{end}: {}; no deploy to `{env}` starts until `konductor unfreeze --env {env}`{}",
                    c.by,
                    c.reason,
                    if c.until.is_some() { " or the end" } else { "" }
                ),
                MAX_MESSAGE,
            );
            e.environment = Some(env.clone());
            e.by = Some(c.by.clone());
            e.reason = Some(c.reason.clone()).filter(|r| !r.is_empty());
            e.until = c.until.map(rfc3339);
            e.at_secs = Some(at);
            e.at = Some(rfc3339(at));
            out.push(e);
        }
    }
    (out, errors)
}

/// Where the pull requests of a production deploy come from.
#[derive(Debug, Clone)]
pub struct Production {
    /// The production environment: the graph's last environment, as `konductor diff`
    /// and `status` take it.
    pub env: String,
    /// Its deploy tag.
    pub deploy_tag: Option<String>,
    /// The train deployed there before this one, when the environment facts know it
    /// (used when there is no deploy tag).
    pub previous: Option<TrainId>,
}

/// The `pr.commented` events of `deployed` (an `env.deployed` of production): one per
/// pull request (GitHub's, not GitLab's merge requests) among the commits the deploy
/// brought over the previous production deploy (the deploy tag's commit before this
/// train's, else the previous deployed train), at most [`MAX_PR_COMMENTS`]. The first
/// deploy to production brings nothing to compare with: no comment. Returns the events
/// and how many pull requests there were in all.
pub fn pr_comments(
    store: &Store,
    deployed: &Event,
    prod: &Production,
) -> Result<(Vec<Event>, usize)> {
    let train: TrainId = match deployed.train.parse() {
        Ok(t) => t,
        Err(_) => return Ok((vec![], 0)),
    };
    let from = match &prod.deploy_tag {
        Some(tag) => {
            let history = deploy_history(store, tag, PREVIOUS_DEPLOY_SCAN)?;
            let mine = history.iter().position(|c| {
                !c.rollback
                    && c.train.as_deref() == Some(deployed.train.as_str())
                    && c.source.as_deref() == Some(deployed.commit.as_str())
            });
            let Some(i) = mine else {
                return Ok((vec![], 0));
            };
            match history[i + 1..]
                .iter()
                .find_map(|c| deployed_end(c, &prod.env, tag))
            {
                Some(e) => e,
                None => return Ok((vec![], 0)),
            }
        }
        None => match prod.previous {
            Some(p) => crate::ops::diff::resolve(store, &p.to_string())?,
            None => return Ok((vec![], 0)),
        },
    };
    if from.commit == deployed.commit {
        return Ok((vec![], 0));
    }
    let to = End {
        spec: deployed.train.clone(),
        train,
        commit: deployed.commit.clone(),
        environment: None,
        deploy_tag: None,
        rollback: false,
    };
    let d = ahead(store, &from, &to, MAX_PR_COMMENTS)?;
    let mut out = Vec::new();
    for pr in d.pull_requests.iter().filter(|p| p.project.is_none()) {
        let mut e = blank(
            EventKind::PrCommented,
            train,
            &pr.number.to_string(),
            &deployed.commit,
            &deployed.remote,
            deployed.url.as_deref(),
        );
        let link = deployed
            .url
            .as_deref()
            .map(|u| format!(" ([board]({u}))"))
            .unwrap_or_default();
        e.message = cut(
            &format!(
                "Deployed to `{}` in train {train} (commit `{}`, previous deploy: train {}){link}.\n\n<sub>konductor</sub>",
                prod.env,
                short(&deployed.commit),
                from.train
            ),
            MAX_MESSAGE,
        );
        e.environment = Some(prod.env.clone());
        e.step = deployed.step.clone();
        e.at = deployed.at.clone();
        e.at_secs = deployed.at_secs;
        e.pull_request = Some(pr.number);
        out.push(e);
    }
    Ok((out, d.pull_requests_total))
}

fn deployed_end(c: &DeployCommit, env: &str, tag: &str) -> Option<End> {
    let (train, commit) = deployed(c)?;
    Some(End {
        spec: env.to_string(),
        train,
        commit,
        environment: Some(env.to_string()),
        deploy_tag: Some(tag.to_string()),
        rollback: c.rollback,
    })
}
