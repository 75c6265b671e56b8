//! Notifications: the events of the trains a tick (or a server) followed, delivered once
//! per event and target to webhooks, Slack and GitHub. See `docs/notifications.md`.
//!
//! Exactly once across racing ticks: before sending, a delivery pushes a create-only
//! marker tag, `notify=<event id>=<target>.<k>` (attempt k), on the train's commit; only
//! the process whose push created it sends. Then it records how it went,
//! `…<k>=sent` or `…<k>=failed`. A delivered event is never sent again; a failed one is
//! tried again on a later tick after a backoff, up to [`RetryPolicy::max_attempts`]; a
//! claim with no result after [`RetryPolicy::lease`] is a claimant that died, and the next
//! attempt is claimed. [`crate::model::notify::decide`] is the rule.
//!
//! Nothing here fails a tick: the caller prints the outcome, and a target that cannot be
//! reached is skipped for the rest of the run, after one short timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::github_app::{self, AppCredentials};
use crate::git::store::{redact_userinfo, Identity, PushOutcome, Store};
use crate::model::notify::{
    accepts, cut, cut_plain, decide, event_id, marker_base, read_marks, signature, slack_message,
    status_description, target_id, train_marker_glob, Decision, Event, EventKind, RetryPolicy,
    TargetSpec, MAX_MESSAGE, PAYLOAD_VERSION,
};
use crate::model::plan::{StepKind, StepState, TrainState};
use crate::model::sdd::Sdd;
use crate::model::tag::TrainId;
use crate::model::time::{parse_rfc3339, rfc3339};
use crate::model::train::{message_field, TagRecord};
use crate::ops::notify_env::{EnvDecl, Followed, Production};
use crate::ops::status::{unblock_command, TrainReport};
use crate::ops::Planned;

/// How long one request to a target may take, unless `KONDUCTOR_NOTIFY_TIMEOUT` says.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// Events older than this when first seen are not sent (so that turning notifications on
/// does not announce the whole history of the followed trains), unless
/// `KONDUCTOR_NOTIFY_MAX_AGE` says otherwise.
pub const DEFAULT_MAX_AGE_SECS: i64 = 24 * 3600;

/// Where the `github` target sends, and as whom.
#[derive(Clone)]
struct GitHub {
    api: String,
    repo: String,
    token: GitHubToken,
}

#[derive(Clone)]
enum GitHubToken {
    Static(String),
    App(AppCredentials),
}

/// One target, ready to send to.
#[derive(Clone)]
pub struct Target {
    /// What was given.
    pub spec: TargetSpec,
    /// Its id in marker names and output (`webhook-1a2b3c4d`, `slack-…`, `github`).
    pub id: String,
    secret: Option<String>,
    github: Option<GitHub>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The targets and the rules of one run.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The targets, in the order given.
    pub targets: Vec<Target>,
    /// Retries and the lease of a claim.
    pub policy: RetryPolicy,
    /// One request's timeout.
    pub timeout: Duration,
    /// The board's URL (`KONDUCTOR_BOARD_URL`), the `url` of events that have no job.
    pub board_url: Option<String>,
    /// See [`DEFAULT_MAX_AGE_SECS`].
    pub max_age: i64,
    /// The remote, as shown in payloads.
    pub remote: String,
}

fn var(k: &str) -> Option<String> {
    std::env::var(k)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn secs_var(k: &str, default: i64, max: i64) -> Result<i64> {
    match var(k) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) => Ok(n),
            _ => Err(Error::input(format!(
                "`{k}` must be a number of seconds from 0 to {max}, not `{}`",
                cut_plain(&v, 40)
            ))),
        },
    }
}

/// The `owner/name` of a GitHub repository from a remote URL (`https://github.com/o/r.git`,
/// `git@github.com:o/r.git`, `ssh://git@github.com/o/r`): the last two parts of its path.
pub fn github_repo_of(url: &str) -> Option<String> {
    let path = if let Some((_, rest)) = url.split_once("://") {
        rest.split_once('/')?.1
    } else if !url.starts_with('/') {
        url.split_once(':')?.1
    } else {
        return None;
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.rsplit('/');
    let name = parts.next()?;
    let owner = parts.next()?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    (ok(owner) && ok(name)).then(|| format!("{owner}/{name}"))
}

impl Notifier {
    /// The notifier for these `--notify` specs, configured from the environment
    /// (`KONDUCTOR_NOTIFY_SECRET`, `KONDUCTOR_GITHUB_*`, `KONDUCTOR_BOARD_URL`,
    /// `KONDUCTOR_NOTIFY_TIMEOUT`, `KONDUCTOR_NOTIFY_BACKOFF`, `KONDUCTOR_NOTIFY_MAX_AGE`);
    /// `None` without specs. Every problem is an input error (exit 2), found before
    /// anything is sent or written; no error shows a secret.
    pub fn from_specs(specs: &[String], remote_url: &str) -> Result<Option<Notifier>> {
        let specs: Vec<&str> = specs
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if specs.is_empty() {
            return Ok(None);
        }
        let mut targets: Vec<Target> = Vec::new();
        for s in specs {
            let spec = crate::model::notify::parse_spec(s).map_err(Error::Input)?;
            let id = target_id(&spec);
            if targets.iter().any(|t| t.id == id) {
                continue; // the same target twice: once is enough
            }
            let mut t = Target {
                spec: spec.clone(),
                id,
                secret: None,
                github: None,
            };
            match &spec {
                TargetSpec::Webhook(url) => {
                    github_app::remember_secret(url);
                    let secret = std::env::var("KONDUCTOR_NOTIFY_SECRET")
                        .ok()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| {
                            Error::input(format!(
                                "`KONDUCTOR_NOTIFY_SECRET` is not set; `{}` signs every webhook \
                                 request with it (`X-Konductor-Signature-256`): set it to the \
                                 secret the receiver checks",
                                crate::model::notify::shown_spec(s)
                            ))
                        })?;
                    github_app::remember_secret(&secret);
                    t.secret = Some(secret);
                }
                TargetSpec::Slack(url) => github_app::remember_secret(url),
                TargetSpec::GitHub => {
                    let api = var("KONDUCTOR_GITHUB_API")
                        .unwrap_or_else(|| github_app::DEFAULT_API.to_string());
                    let lower = api.to_ascii_lowercase();
                    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                        return Err(Error::input(format!(
                            "`KONDUCTOR_GITHUB_API` must be an http(s):// URL, not `{}`",
                            redact_userinfo(&cut_plain(&api, 60))
                        )));
                    }
                    let repo = match var("KONDUCTOR_GITHUB_REPO") {
                        Some(r) => {
                            if github_repo_of(&format!("https://x/{r}")).as_deref() != Some(&r) {
                                return Err(Error::input(format!(
                                    "`KONDUCTOR_GITHUB_REPO` must be `owner/name`, not `{}`",
                                    cut_plain(&r, 60)
                                )));
                            }
                            r
                        }
                        None => github_repo_of(remote_url).ok_or_else(|| {
                            Error::input(format!(
                                "cannot tell the GitHub repository of `{remote_url}` for `--notify github`; set `KONDUCTOR_GITHUB_REPO=owner/name`"
                            ))
                        })?,
                    };
                    let token = match var("KONDUCTOR_GITHUB_TOKEN") {
                        Some(tok) => {
                            github_app::remember_secret(&tok);
                            GitHubToken::Static(tok)
                        }
                        None => match AppCredentials::from_env()? {
                            Some(app) => GitHubToken::App(app),
                            None => {
                                return Err(Error::input(
                                    "`--notify github` needs a token: set `KONDUCTOR_GITHUB_TOKEN`, or configure a GitHub App (`KONDUCTOR_GITHUB_APP_ID`, `KONDUCTOR_GITHUB_INSTALLATION_ID`, `KONDUCTOR_GITHUB_APP_KEY_FILE`)",
                                ))
                            }
                        },
                    };
                    t.github = Some(GitHub {
                        api: api.trim_end_matches('/').to_string(),
                        repo,
                        token,
                    });
                }
            }
            targets.push(t);
        }
        let timeout = secs_var("KONDUCTOR_NOTIFY_TIMEOUT", DEFAULT_TIMEOUT_SECS as i64, 60)?;
        let backoff = secs_var("KONDUCTOR_NOTIFY_BACKOFF", 30, 86_400)?;
        let max_age = secs_var(
            "KONDUCTOR_NOTIFY_MAX_AGE",
            DEFAULT_MAX_AGE_SECS,
            366 * 86_400,
        )?;
        let timeout = timeout.max(1);
        let board_url = var("KONDUCTOR_BOARD_URL");
        if let Some(b) = &board_url {
            let lower = b.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(Error::input(format!(
                    "`KONDUCTOR_BOARD_URL` must be an http(s):// URL, not `{}`",
                    redact_userinfo(&cut_plain(b, 60))
                )));
            }
        }
        Ok(Some(Notifier {
            targets,
            policy: RetryPolicy {
                backoff,
                // A live claimant finishes within a few timeouts (a deployment is two
                // requests): the lease is far beyond that.
                lease: (6 * timeout).max(RetryPolicy::default().lease),
                ..RetryPolicy::default()
            },
            timeout: Duration::from_secs(timeout as u64),
            board_url,
            max_age,
            remote: redact_userinfo(remote_url),
        }))
    }
}

/// What happened to one delivery in this run.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The event's id.
    pub id: String,
    /// The event.
    pub event: EventKind,
    /// The target's id.
    pub target: String,
    /// `sent`, `failed` (tried again later), `gave-up` (the last attempt failed),
    /// `claimed-elsewhere` (a racing process claimed this attempt first) or `skipped`
    /// (the target failed earlier in this run).
    pub outcome: String,
    /// The attempt (1 for the first).
    pub attempt: u32,
    /// Why it failed, credentials removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The events of one train, as of its tags now. Kinds no target wants are made too; the
/// caller filters with [`accepts`].
pub fn events(
    p: &Planned,
    report: &TrainReport,
    remote: &str,
    board_url: Option<&str>,
) -> Vec<Event> {
    let train = report.train.as_str();
    let base = |kind: EventKind, subject: Option<&str>, message: String| Event {
        version: PAYLOAD_VERSION,
        event: kind,
        id: event_id(train, kind, subject),
        train: train.to_string(),
        step: None,
        attempt: None,
        rerun: None,
        environment: None,
        commit: report.sha.clone(),
        url: board_url.map(str::to_string),
        message: cut(&message, MAX_MESSAGE),
        command: None,
        at: None,
        by: None,
        reason: None,
        until: None,
        remote: remote.to_string(),
        status: None,
        at_secs: None,
        pull_request: None,
    };
    let at = |s: &Option<String>| s.as_deref().and_then(parse_rfc3339);
    let mut out = Vec::new();
    let mut last_finish: Option<i64> = None;
    for s in &report.steps {
        let env = p.sdd.step(&s.name).and_then(|d| d.environment.clone());
        for a in &s.attempts {
            let run = a.rerun.map(|k| format!(".rerun.{k}")).unwrap_or_default();
            let subject = format!("{}.{}{run}", s.name, a.attempt);
            let rerun_note = a.rerun.map(|k| format!(", re-run {k}")).unwrap_or_default();
            let when = at(&a.finished_at)
                .or(at(&a.started_at))
                .or(at(&a.triggered_at));
            if let Some(f) = at(&a.finished_at) {
                last_finish = Some(last_finish.map_or(f, |l| l.max(f)));
            }
            let with = |mut e: Event, url: bool| {
                e.step = Some(s.name.clone());
                e.attempt = Some(a.attempt);
                e.rerun = a.rerun;
                e.environment = env.clone();
                if url {
                    if let Some(u) = &a.job_url {
                        e.url = Some(u.clone());
                    }
                }
                e.at_secs = when;
                e.at = when.map(rfc3339);
                e
            };
            let info = a
                .info
                .as_deref()
                .map(|i| format!(": {i}"))
                .unwrap_or_default();
            match a.state.as_str() {
                "failure" => out.push(with(
                    base(
                        EventKind::StepFailed,
                        Some(&subject),
                        format!(
                            "train {train}: step `{}` failed (attempt {}{rerun_note}){info}",
                            s.name, a.attempt
                        ),
                    ),
                    true,
                )),
                "timeout" => out.push(with(
                    base(
                        EventKind::StepTimedOut,
                        Some(&subject),
                        format!(
                            "train {train}: step `{}` timed out (attempt {}{rerun_note}){info}",
                            s.name, a.attempt
                        ),
                    ),
                    true,
                )),
                _ => {}
            }
            let status = match a.state.as_str() {
                "success" => "success",
                "failure" => "failure",
                "timeout" => "error",
                _ => "pending",
            };
            let mut e = with(
                base(
                    EventKind::StepStatus,
                    Some(&format!("{subject}.{status}")),
                    format!(
                        "attempt {}{rerun_note}: {}",
                        a.attempt,
                        if a.state == "timeout" {
                            "timed out"
                        } else {
                            a.state.as_str()
                        }
                    ),
                ),
                true,
            );
            e.status = Some(status);
            out.push(e);
            if let Some(env) = &env {
                let dsub = format!("{env}={}.{}", s.name, a.attempt);
                out.push(with(
                    base(
                        EventKind::DeployStarted,
                        Some(&dsub),
                        format!("train {train}: deploying to `{env}` (step `{}`)", s.name),
                    ),
                    true,
                ));
                if a.state == "success" && s.state == StepState::Success && s.attempt == a.attempt {
                    out.push(with(
                        base(
                            EventKind::EnvDeployed,
                            Some(&dsub),
                            format!(
                                "train {train} deployed to `{env}` (step `{}`, attempt {})",
                                s.name, a.attempt
                            ),
                        ),
                        true,
                    ));
                }
            }
        }
        if s.kind == StepKind::Manual
            && report.is_waiting_gate(s)
            && report.state != TrainState::Cancelled
        {
            let when = s
                .needs
                .iter()
                .filter_map(|n| report.step(n))
                .filter_map(|d| at(&d.finished_at).or(at(&d.unblocked_at)))
                .max();
            let cmd = unblock_command(train, &s.name);
            // The planner's reason is `waiting for manual unblock (<why the gate applies>)`.
            let why = s
                .reason
                .as_deref()
                .map(|r| {
                    r.strip_prefix("waiting for manual unblock (")
                        .and_then(|w| w.strip_suffix(')'))
                        .unwrap_or(r)
                })
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let mut e = base(
                EventKind::GateWaiting,
                Some(&s.name),
                format!(
                    "train {train}: gate `{}` is waiting for someone{why}; unblock it with: {cmd}",
                    s.name
                ),
            );
            e.step = Some(s.name.clone());
            e.command = Some(cmd);
            e.at_secs = when;
            e.at = when.map(rfc3339);
            out.push(e);
        }
    }
    let train_event = match report.state {
        TrainState::Succeeded => Some((
            EventKind::TrainSucceeded,
            format!("train {train} reached `{}`", report.target),
        )),
        TrainState::Failed => {
            let failed: Vec<String> = report
                .steps
                .iter()
                .filter(|s| s.state == StepState::Failure)
                .map(|s| format!("`{}`", s.name))
                .collect();
            Some((
                EventKind::TrainFailed,
                format!(
                    "train {train} failed: {} failed with no retry left; `konductor retry --train {train} --step STEP` tries again",
                    if failed.is_empty() { "a step".to_string() } else { failed.join(", ") }
                ),
            ))
        }
        TrainState::Superseded => {
            let why = report
                .steps
                .iter()
                .find(|s| s.state == StepState::Superseded)
                .and_then(|s| s.reason.clone())
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            Some((
                EventKind::TrainSuperseded,
                format!("train {train} was superseded{why}"),
            ))
        }
        _ => None,
    };
    if let Some((kind, msg)) = train_event {
        let mut e = base(kind, None, msg);
        e.at_secs = last_finish;
        e.at = last_finish.map(rfc3339);
        out.push(e);
    }
    out
}

/// Why a send failed; `unreachable`: no answer at all (the target is skipped for the rest
/// of the run).
#[derive(Debug)]
struct SendError {
    message: String,
    unreachable: bool,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("konductor/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into()
}

fn clean(text: &str) -> String {
    github_app::redact(&redact_userinfo(text))
}

/// POST a JSON body; the answer's status and body (at most 64 KB), or why there was none.
fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::result::Result<(u16, String), SendError> {
    let mut req = agent.post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    match req.send(body) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .with_config()
                .limit(1 << 16)
                .read_to_string()
                .unwrap_or_default();
            Ok((status, text))
        }
        Err(e) => Err(SendError {
            message: clean(&e.to_string()),
            unreachable: true,
        }),
    }
}

fn refused(status: u16, body: &str) -> SendError {
    let said = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|j| {
            j.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string());
    let said = cut_plain(&clean(&said), 200);
    SendError {
        message: if said.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {said}")
        },
        unreachable: false,
    }
}

/// Send one event to one target. Returns what to keep in the `=sent` marker (a GitHub
/// deployment's id).
fn send(
    agent: &ureq::Agent,
    t: &Target,
    ev: &Event,
    deployment: Option<&str>,
) -> std::result::Result<Option<String>, SendError> {
    let ok = |r: (u16, String)| {
        if (200..300).contains(&r.0) {
            Ok(r.1)
        } else {
            Err(refused(r.0, &r.1))
        }
    };
    match &t.spec {
        TargetSpec::Webhook(url) => {
            let body = serde_json::to_vec(ev).expect("an event serializes");
            let sig = signature(t.secret.as_deref().unwrap_or("").as_bytes(), &body);
            ok(post(
                agent,
                url,
                &[
                    ("X-Konductor-Event", ev.event.as_str().to_string()),
                    ("X-Konductor-Delivery", ev.id.clone()),
                    ("X-Konductor-Signature-256", sig),
                ],
                &body,
            )?)?;
            Ok(None)
        }
        TargetSpec::Slack(url) => {
            let body = serde_json::to_vec(&slack_message(ev)).expect("a message serializes");
            ok(post(agent, url, &[], &body)?)?;
            Ok(None)
        }
        TargetSpec::GitHub => {
            let gh = t.github.as_ref().expect("a github target has its config");
            let token = match &gh.token {
                GitHubToken::Static(s) => s.clone(),
                GitHubToken::App(app) => {
                    github_app::installation_token(app)
                        .map_err(|e| SendError {
                            message: clean(&e.to_string()),
                            unreachable: false,
                        })?
                        .token
                }
            };
            let headers = [
                ("Authorization", format!("Bearer {token}")),
                ("Accept", "application/vnd.github+json".to_string()),
                ("X-GitHub-Api-Version", "2022-11-28".to_string()),
            ];
            let repo = format!("{}/repos/{}", gh.api, gh.repo);
            let job_url = ev
                .url
                .as_deref()
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
            let step = ev.step.as_deref().unwrap_or("");
            let env = ev.environment.as_deref().unwrap_or("");
            let create_deployment = || -> std::result::Result<String, SendError> {
                let body = serde_json::json!({
                    "ref": ev.commit,
                    "environment": env,
                    "auto_merge": false,
                    "required_contexts": [],
                    "description": cut_plain(&format!("train {} to {env}", ev.train), 140),
                    "payload": {"train": ev.train, "step": step, "attempt": ev.attempt},
                });
                let answer = ok(post(
                    agent,
                    &format!("{repo}/deployments"),
                    &headers,
                    body.to_string().as_bytes(),
                )?)?;
                serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|j| j.get("id").and_then(|i| i.as_u64()))
                    .map(|i| i.to_string())
                    .ok_or_else(|| SendError {
                        message: "the GitHub API created a deployment but gave no `id`".into(),
                        unreachable: false,
                    })
            };
            let deployment_status = |id: &str, state: &str| -> std::result::Result<(), SendError> {
                let mut body = serde_json::json!({
                    "state": state,
                    "environment": env,
                    "description": status_description(ev),
                });
                if let Some(u) = job_url {
                    body["log_url"] = serde_json::Value::String(u.to_string());
                }
                ok(post(
                    agent,
                    &format!("{repo}/deployments/{id}/statuses"),
                    &headers,
                    body.to_string().as_bytes(),
                )?)?;
                Ok(())
            };
            match ev.event {
                EventKind::StepStatus => {
                    let mut body = serde_json::json!({
                        "state": ev.status.unwrap_or("pending"),
                        "context": format!("konductor/{step}"),
                        "description": status_description(ev),
                    });
                    if let Some(u) = job_url {
                        body["target_url"] = serde_json::Value::String(u.to_string());
                    }
                    ok(post(
                        agent,
                        &format!("{repo}/statuses/{}", ev.commit),
                        &headers,
                        body.to_string().as_bytes(),
                    )?)?;
                    Ok(None)
                }
                EventKind::DeployStarted => {
                    let id = create_deployment()?;
                    deployment_status(&id, "in_progress")?;
                    Ok(Some(id))
                }
                EventKind::EnvDeployed | EventKind::StepFailed | EventKind::StepTimedOut => {
                    let id = match deployment {
                        Some(d) => d.to_string(),
                        None => create_deployment()?,
                    };
                    let state = match ev.event {
                        EventKind::EnvDeployed => "success",
                        EventKind::StepFailed => "failure",
                        _ => "error",
                    };
                    deployment_status(&id, state)?;
                    Ok(Some(id))
                }
                EventKind::EnvRolledBack => {
                    // A deployment of the train rolled back to, at once successful: GitHub
                    // marks the environment's earlier deployments inactive
                    // (`auto_inactive`), the rolled-back one among them.
                    let id = create_deployment()?;
                    let mut body = serde_json::json!({
                        "state": "success",
                        "environment": env,
                        "description": status_description(ev),
                        "auto_inactive": true,
                    });
                    if let Some(u) = job_url {
                        body["log_url"] = serde_json::Value::String(u.to_string());
                    }
                    ok(post(
                        agent,
                        &format!("{repo}/deployments/{id}/statuses"),
                        &headers,
                        body.to_string().as_bytes(),
                    )?)?;
                    Ok(Some(id))
                }
                EventKind::PrCommented => {
                    let Some(number) = ev.pull_request else {
                        return Ok(None);
                    };
                    let body = serde_json::json!({ "body": ev.message });
                    ok(post(
                        agent,
                        &format!("{repo}/issues/{number}/comments"),
                        &headers,
                        body.to_string().as_bytes(),
                    )?)?;
                    Ok(None)
                }
                // Not sent to GitHub ([`accepts`]).
                _ => Ok(None),
            }
        }
    }
}

/// The deployment a `deploy.started` delivery made for the same deploy attempt, from its
/// `=sent` marker.
fn deployment_of(records: &[TagRecord], ev: &Event, target: &str) -> Option<String> {
    let subject = ev.id.split_once(&format!("={}=", ev.event.as_str()))?.1;
    let base = marker_base(
        &event_id(&ev.train, EventKind::DeployStarted, Some(subject)),
        target,
    );
    records
        .iter()
        .filter(|r| r.name.starts_with(&format!("{base}.")) && r.name.ends_with("=sent"))
        .find_map(|r| message_field(&r.message, "deployment").map(str::to_string))
}

/// A train's marker records, and their names with their tagger times.
type Markers = (Vec<TagRecord>, Vec<(String, i64)>);

/// What a notification run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifyReport {
    /// Each delivery tried in this run (deliveries done earlier, waiting for their
    /// backoff or claimed by a live process are not listed).
    pub deliveries: Vec<Delivery>,
    /// Trains whose events could not be read, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Deliver the events of `trains` (as the cache has them now: call it after a tick has
/// pushed) to every target, each once. `sdd` and `target` are the tick's overrides. The
/// environment facts are read once (one prefix fetch of the claims and records), each
/// environment's deploy tag once, and each train's markers once, only when one of its
/// deliveries is not finished in the cache.
///
/// Besides the followed trains' own events, the environments their graphs declare give
/// `env.rolled_back` and `env.frozen` ([`super::notify_env::env_events`]), recorded with
/// the train they are about; and with a `github` target, a production `env.deployed`
/// gives a comment on each pull request it brought
/// ([`super::notify_env::pr_comments`]).
pub fn notify_trains(
    store: &Store,
    n: &Notifier,
    trains: &[TrainId],
    sdd: Option<&Sdd>,
    target: Option<&str>,
    who: &Identity,
    now: i64,
) -> Result<NotifyReport> {
    let mut report = NotifyReport::default();
    let mut known = super::discover::cached_trains(store)?;
    known.extend(trains.iter().copied());
    let envs = super::environments::environments(store, &known, sdd, now)?;
    let agent = agent(n.timeout);
    let mut down: BTreeSet<String> = BTreeSet::new();
    let fresh = |e: &Event| {
        e.at_secs
            .is_none_or(|at| now.saturating_sub(at) <= n.max_age)
    };
    let mut by_train: BTreeMap<TrainId, TrainEvents> = BTreeMap::new();
    let mut decls: BTreeMap<String, EnvDecl> = BTreeMap::new();
    let mut followed: Vec<Followed> = Vec::new();
    let mut sorted: Vec<TrainId> = trains.to_vec();
    sorted.sort();
    sorted.dedup();
    for &t in &sorted {
        let planned = match super::read::plan_train_in(store, t, sdd, target, now, &envs) {
            Ok(p) => p,
            Err(e) => {
                report.errors.push(format!("train {t}: {e}"));
                continue;
            }
        };
        let tr = TrainReport::new(&planned);
        let graph_envs = planned.sdd.environments();
        for (env, step) in &graph_envs {
            // The newest train's declaration wins (trains are in order).
            decls.insert(
                env.to_string(),
                EnvDecl {
                    step: step.name.clone(),
                    deploy_tag: step.deploy_tag.clone(),
                },
            );
        }
        followed.push(Followed {
            train: t,
            commit: planned.obs.commit.clone(),
            opened: parse_rfc3339(&tr.opened_at),
            envs: graph_envs.iter().map(|(e, _)| e.to_string()).collect(),
        });
        let production = graph_envs.last().map(|(env, step)| Production {
            env: env.to_string(),
            deploy_tag: step.deploy_tag.clone(),
            previous: envs.get(*env).and_then(|f| {
                f.trains
                    .iter()
                    .rev()
                    .find(|(x, p)| **x < t && **p == crate::model::env::EnvPhase::Deployed)
                    .map(|(x, _)| *x)
            }),
        });
        let evs: Vec<Event> = events(&planned, &tr, &n.remote, n.board_url.as_deref())
            .into_iter()
            .filter(|e| fresh(e))
            .collect();
        by_train.insert(
            t,
            TrainEvents {
                commit: planned.obs.commit.clone(),
                events: evs,
                production,
            },
        );
    }
    let (env_evs, errors) =
        super::notify_env::env_events(store, &decls, &followed, &n.remote, n.board_url.as_deref());
    report.errors.extend(errors);
    for e in env_evs.into_iter().filter(|e| fresh(e)) {
        let Ok(t) = e.train.parse::<TrainId>() else {
            continue;
        };
        by_train
            .entry(t)
            .or_insert_with(|| TrainEvents {
                commit: e.commit.clone(),
                events: vec![],
                production: None,
            })
            .events
            .push(e);
    }
    for (t, te) in by_train {
        deliver_train(store, n, &agent, &mut down, t, te, who, now, &mut report)?;
    }
    Ok(report)
}

/// One train's events, and what its pull-request comments need.
struct TrainEvents {
    /// The train's commit: its markers go there.
    commit: String,
    events: Vec<Event>,
    /// The train graph's production environment, if it has environments.
    production: Option<Production>,
}

/// Whether a delivery is finished (sent, or given up) as the markers say.
fn finished(base: &str, names: &[(String, i64)], now: i64, p: &RetryPolicy) -> bool {
    matches!(
        decide(&read_marks(base, names), now, p),
        Decision::Done | Decision::GaveUp
    )
}

/// Deliver one train's events, each to every target that takes it.
#[allow(clippy::too_many_arguments)]
fn deliver_train(
    store: &Store,
    n: &Notifier,
    agent: &ureq::Agent,
    down: &mut BTreeSet<String>,
    t: TrainId,
    te: TrainEvents,
    who: &Identity,
    now: i64,
    report: &mut NotifyReport,
) -> Result<()> {
    let TrainEvents {
        commit,
        mut events,
        production,
    } = te;
    let wanted = |evs: &[Event]| {
        evs.iter()
            .any(|e| n.targets.iter().any(|t| accepts(&t.spec, e)))
    };
    if !wanted(&events) {
        return Ok(());
    }
    // A train the run does not follow (a rollback's, a freeze's) may not be here yet:
    // its markers are tags on its commit.
    if let Err(e) = store.ensure_commit(&commit) {
        report
            .errors
            .push(format!("train {t}: {}", clean(&e.to_string())));
        return Ok(());
    }
    let glob = train_marker_glob(&t.to_string());
    let read = || -> Result<Markers> {
        let recs = store.tag_records(&glob)?;
        let names = recs
            .iter()
            .map(|r| (r.name.clone(), r.time.unwrap_or(0)))
            .collect();
        Ok((recs, names))
    };
    let (mut records, mut names) = read()?;
    let open = |evs: &[Event], names: &[(String, i64)]| {
        evs.iter().any(|e| {
            n.targets.iter().any(|tg| {
                accepts(&tg.spec, e)
                    && !finished(&marker_base(&e.id, &tg.id), names, now, &n.policy)
            })
        })
    };
    let mut refreshed = false;
    if open(&events, &names) {
        store.refresh(std::slice::from_ref(&glob))?;
        (records, names) = read()?;
        refreshed = true;
    }
    // Pull-request comments: only while the production deploy's GitHub delivery or one
    // of the comments is not finished, so that a finished deploy costs no history fetch.
    let github = n.targets.iter().find(|tg| tg.spec == TargetSpec::GitHub);
    if let (Some(gh), Some(prod)) = (github, &production) {
        let deployed = events
            .iter()
            .find(|e| {
                e.event == EventKind::EnvDeployed
                    && e.environment.as_deref() == Some(prod.env.as_str())
            })
            .cloned();
        if let Some(dep) = deployed {
            let pr_prefix = format!(
                "notify={}=",
                event_id(&dep.train, EventKind::PrCommented, Some(""))
            );
            let comment_open = |names: &[(String, i64)]| {
                names.iter().any(|(nm, _)| {
                    nm.strip_prefix(&pr_prefix)
                        .and_then(|rest| rest.split_once('='))
                        .is_some_and(|(num, _)| {
                            !finished(
                                &marker_base(
                                    &event_id(&dep.train, EventKind::PrCommented, Some(num)),
                                    &gh.id,
                                ),
                                names,
                                now,
                                &n.policy,
                            )
                        })
                })
            };
            let need = |names: &[(String, i64)]| {
                !finished(&marker_base(&dep.id, &gh.id), names, now, &n.policy)
                    || comment_open(names)
            };
            if need(&names) && !refreshed {
                store.refresh(std::slice::from_ref(&glob))?;
                (records, names) = read()?;
            }
            if need(&names) {
                match super::notify_env::pr_comments(store, &dep, prod) {
                    Ok((prs, total)) => {
                        if total > prs.len() && total > super::notify_env::MAX_PR_COMMENTS {
                            report.errors.push(format!(
                                "train {t}: {total} pull requests reached `{}`; only the newest {} are commented on",
                                prod.env,
                                super::notify_env::MAX_PR_COMMENTS
                            ));
                        }
                        events.extend(prs);
                    }
                    Err(e) => report.errors.push(format!(
                        "train {t}: the pull requests of its deploy to `{}`: {}",
                        prod.env,
                        clean(&e.to_string())
                    )),
                }
            }
        }
    }
    let pairs: Vec<(&Event, &Target)> = events
        .iter()
        .flat_map(|e| {
            n.targets
                .iter()
                .filter(move |t| accepts(&t.spec, e))
                .map(move |t| (e, t))
        })
        .collect();
    // Deployments first, so that a deploy's end finds the deployment its start made;
    // pull-request comments before the production deploy's own delivery, so that a
    // finished deploy means its comments were claimed.
    let mut order = pairs.clone();
    order.sort_by_key(|(e, _)| match e.event {
        EventKind::DeployStarted => 0,
        EventKind::PrCommented => 1,
        _ => 2,
    });
    for (ev, tg) in order {
        let base = marker_base(&ev.id, &tg.id);
        let k = match decide(&read_marks(&base, &names), now, &n.policy) {
            Decision::Claim(k) => k,
            _ => continue,
        };
        let mut d = Delivery {
            id: ev.id.clone(),
            event: ev.event,
            target: tg.id.clone(),
            outcome: String::new(),
            attempt: k,
            error: None,
        };
        if down.contains(&tg.id) {
            d.outcome = "skipped".into();
            report.deliveries.push(d);
            continue;
        }
        let claim = format!("{base}.{k}");
        let pushed = store
            .make_tag(
                &claim,
                &commit,
                &format!(
                    "notify `{}` to `{}`: attempt {k}\n\nby: {who}\n",
                    ev.id, tg.id
                ),
                who,
                now,
            )
            .and_then(|oid| store.push_tag_create(&claim, &oid));
        match pushed {
            Ok(PushOutcome::Created) => {}
            Ok(PushOutcome::AlreadyExists(_)) => {
                d.outcome = "claimed-elsewhere".into();
                report.deliveries.push(d);
                continue;
            }
            Err(e) => return Err(e),
        }
        let deployment = deployment_of(&records, ev, &tg.id);
        let (suffix, body) = match send(agent, tg, ev, deployment.as_deref()) {
            Ok(note) => {
                d.outcome = "sent".into();
                let extra = note
                    .map(|id| format!("deployment: {id}\n"))
                    .unwrap_or_default();
                (
                    "sent",
                    format!("sent `{}` to `{}`\n\n{extra}by: {who}\n", ev.id, tg.id),
                )
            }
            Err(e) => {
                if e.unreachable {
                    down.insert(tg.id.clone());
                }
                let last = k >= n.policy.max_attempts;
                d.outcome = if last { "gave-up" } else { "failed" }.into();
                d.error = Some(e.message.clone());
                (
                    "failed",
                    format!(
                        "failed `{}` to `{}`: attempt {k} of {}\n\nerror: {}\nby: {who}\n",
                        ev.id,
                        tg.id,
                        n.policy.max_attempts,
                        cut_plain(&e.message, 300)
                    ),
                )
            }
        };
        let result = format!("{claim}={suffix}");
        let recorded = store
            .make_tag(&result, &commit, &body, who, now)
            .and_then(|oid| store.push_tag_create(&result, &oid));
        if let Err(e) = recorded {
            let why = clean(&e.to_string());
            d.error = Some(match d.error.take() {
                    Some(prev) => format!("{prev}; and its marker `{result}` was not recorded: {why}"),
                    None => format!("sent, but its marker `{result}` was not recorded ({why}); it may be sent again after the lease"),
                });
        } else if let Some(r) = store.tag_record(&result) {
            // A deploy's end in this same run finds the deployment.
            names.push((r.name.clone(), r.time.unwrap_or(now)));
            records.push(r);
        }
        report.deliveries.push(d);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_repo_comes_from_the_remote_url() {
        for (url, want) in [
            ("https://github.com/acme/app.git", Some("acme/app")),
            ("https://github.com/acme/app", Some("acme/app")),
            ("git@github.com:acme/app.git", Some("acme/app")),
            ("ssh://git@github.com/acme/app.git", Some("acme/app")),
            ("http://127.0.0.1:8080/origin.git", None),
            ("/srv/git/acme/app.git", None),
        ] {
            assert_eq!(github_repo_of(url).as_deref(), want, "{url}");
        }
    }
}
