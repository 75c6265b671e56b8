//! Notifications, the pure part: the events, their payload, the targets' specs, the
//! marker refs that make each delivery happen once, and the messages each kind of target
//! gets (webhook JSON and its HMAC, Slack blocks, GitHub API requests).
//!
//! What happens is decided here from names and times only; `ops::notify` reads the
//! markers, pushes them and sends the requests. See `docs/notifications.md`.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What happened. The first nine are what webhooks and Slack receive; the last three are
/// what the `github` target needs on top (a commit status per step, a deployment when an
/// environment's deploy step starts, a comment on each pull request that reaches
/// production) and are never sent to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum EventKind {
    /// An attempt of a job step reported `failure`.
    #[serde(rename = "step.failed")]
    StepFailed,
    /// An attempt of a job step timed out (`…=timeout`).
    #[serde(rename = "step.timed_out")]
    StepTimedOut,
    /// A manual gate waits for a person: every dependency is done.
    #[serde(rename = "gate.waiting")]
    GateWaiting,
    /// An environment's deploy step succeeded.
    #[serde(rename = "env.deployed")]
    EnvDeployed,
    /// An environment was rolled back (a deploy commit with `rollback: true` on its
    /// deploy tag).
    #[serde(rename = "env.rolled_back")]
    EnvRolledBack,
    /// An environment was frozen (a freeze record `env=<environment>=<k>`).
    #[serde(rename = "env.frozen")]
    EnvFrozen,
    /// The train reached its target.
    #[serde(rename = "train.succeeded")]
    TrainSucceeded,
    /// A failure blocks the train's target and nothing else is moving.
    #[serde(rename = "train.failed")]
    TrainFailed,
    /// A newer train took an environment this train needed.
    #[serde(rename = "train.superseded")]
    TrainSuperseded,
    /// `github` only: an attempt's state as a commit status (pending, success, failure,
    /// error).
    #[serde(rename = "step.status")]
    StepStatus,
    /// `github` only: an environment's deploy step was triggered or started.
    #[serde(rename = "deploy.started")]
    DeployStarted,
    /// `github` only: a pull request reached production in this train (a comment on it).
    #[serde(rename = "pr.commented")]
    PrCommented,
}

impl EventKind {
    /// The name, as in the payload's `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StepFailed => "step.failed",
            EventKind::StepTimedOut => "step.timed_out",
            EventKind::GateWaiting => "gate.waiting",
            EventKind::EnvDeployed => "env.deployed",
            EventKind::EnvRolledBack => "env.rolled_back",
            EventKind::EnvFrozen => "env.frozen",
            EventKind::TrainSucceeded => "train.succeeded",
            EventKind::TrainFailed => "train.failed",
            EventKind::TrainSuperseded => "train.superseded",
            EventKind::StepStatus => "step.status",
            EventKind::DeployStarted => "deploy.started",
            EventKind::PrCommented => "pr.commented",
        }
    }

    /// The events webhooks and Slack receive.
    pub const PUBLIC: [EventKind; 9] = [
        EventKind::StepFailed,
        EventKind::StepTimedOut,
        EventKind::GateWaiting,
        EventKind::EnvDeployed,
        EventKind::EnvRolledBack,
        EventKind::EnvFrozen,
        EventKind::TrainSucceeded,
        EventKind::TrainFailed,
        EventKind::TrainSuperseded,
    ];
}

/// The payload version (`version` in the JSON).
pub const PAYLOAD_VERSION: u32 = 1;

/// The longest `message`, in characters; longer ones are cut (see [`cut`]).
pub const MAX_MESSAGE: usize = 2000;

/// Slack's limit on the text of one section block, in characters.
pub const SLACK_SECTION_MAX: usize = 3000;

/// One event: the payload webhooks receive, and what every other target is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The payload version ([`PAYLOAD_VERSION`]).
    pub version: u32,
    /// What happened.
    pub event: EventKind,
    /// Unique per event (not per delivery or target): `<train>=<event>[=<subject>]`, the
    /// same for every tick that sees the event. Use it to drop duplicates.
    pub id: String,
    /// The train, `N.P`.
    pub train: String,
    /// The step, for step and gate events and an environment's deploy step.
    pub step: Option<String>,
    /// The attempt (job id) of a step event.
    pub attempt: Option<u32>,
    /// The CI re-run of that attempt, if the event is a re-run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<u32>,
    /// The environment, for environment events (and a deploy step's failure).
    pub environment: Option<String>,
    /// The train's commit.
    pub commit: String,
    /// The job's link (step events, when the job gave `job_url`), else the board's
    /// (`KONDUCTOR_BOARD_URL`), else null.
    pub url: Option<String>,
    /// One or a few lines for people, at most [`MAX_MESSAGE`] characters.
    pub message: String,
    /// The command that acts on it: for `gate.waiting`, the exact `konductor unblock`.
    pub command: Option<String>,
    /// When it happened (RFC 3339), from the tag that recorded it.
    pub at: Option<String>,
    /// Who did it (`env.rolled_back`, `env.frozen`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why (`env.rolled_back`, `env.frozen`), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a freeze ends (`env.frozen`, RFC 3339), when it has an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The remote, credentials removed.
    pub remote: String,
    /// `step.status` only: the commit status state (`pending`, `success`, `failure`,
    /// `error`).
    #[serde(skip)]
    pub status: Option<&'static str>,
    /// Seconds since the epoch of `at`.
    #[serde(skip)]
    pub at_secs: Option<i64>,
    /// `pr.commented` only: the pull request's number.
    #[serde(skip)]
    pub pull_request: Option<u64>,
}

/// The id of an event: `<train>=<event>` and, when one train can have several of that
/// kind, `=<subject>` (`unit-tests.2`, `staging=deploy.1`).
pub fn event_id(train: &str, kind: EventKind, subject: Option<&str>) -> String {
    match subject {
        Some(s) => format!("{train}={}={s}", kind.as_str()),
        None => format!("{train}={}", kind.as_str()),
    }
}

/// `text` cut to at most `max` characters: at the last line break in the last fifth when
/// there is one, else at a character boundary, followed by `… (cut: N more characters)`.
pub fn cut(text: &str, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text.to_string();
    }
    // The note takes at most 40 characters.
    let keep = max.saturating_sub(40);
    let mut head: String = text.chars().take(keep).collect();
    if let Some(i) = head.rfind('\n') {
        if head[..i].chars().count() * 5 >= keep * 4 {
            head.truncate(i);
        }
    }
    let rest = total - head.chars().count();
    format!("{head}… (cut: {rest} more characters)")
}

/// A notification target, as given to `--notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `webhook+https://…` or `webhook+http://…`: the URL without the prefix.
    Webhook(String),
    /// `slack+https://…` (or `slack+http://…`, for tests and proxies).
    Slack(String),
    /// `github`: commit statuses and deployments through the GitHub API.
    GitHub,
}

/// What a spec looks like in errors: its scheme and host, never its path or query (a
/// Slack hook's path is its secret) nor any user info.
pub fn shown_spec(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        // Not a URL: its kind only (`email+…`), or a short plain word; anything that
        // could hold a secret (`@`, `:`, `/`) is left out.
        let head: String = spec
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(24)
            .collect();
        return if head.len() == spec.len() {
            head
        } else if spec[head.len()..].starts_with('+') {
            format!("{head}+…")
        } else {
            format!("{head}…")
        };
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let scheme: String = scheme
        .chars()
        .take(24)
        .filter(|c| !c.is_control())
        .collect();
    let host: String = host.chars().take(64).filter(|c| !c.is_control()).collect();
    if rest.len() > authority.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

const SPEC_HINT: &str = "use `webhook+https://…`, `slack+https://hooks.slack.com/…` or `github`";

/// Parse one `--notify` spec. Errors never repeat the spec beyond [`shown_spec`].
pub fn parse_spec(spec: &str) -> Result<TargetSpec, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(format!("empty notification target; {SPEC_HINT}"));
    }
    if spec == "github" {
        return Ok(TargetSpec::GitHub);
    }
    let shown = shown_spec(spec);
    let Some((kind, url)) = spec.split_once('+') else {
        return Err(format!(
            "unknown notification target `{shown}`; {SPEC_HINT}"
        ));
    };
    if kind != "webhook" && kind != "slack" {
        return Err(format!(
            "unknown notification target `{shown}`; {SPEC_HINT}"
        ));
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return Err(format!(
            "notification target `{shown}` needs an http:// or https:// URL after `{kind}+`"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "notification target `{shown}` has credentials in its URL; they would travel in \
             every request and show in logs: remove them (a webhook is signed with \
             `KONDUCTOR_NOTIFY_SECRET`)"
        ));
    }
    let host = authority.split(':').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("notification target `{shown}` has no host"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "notification target `{shown}` holds a space or a control character"
        ));
    }
    Ok(match kind {
        "webhook" => TargetSpec::Webhook(url.to_string()),
        _ => TargetSpec::Slack(url.to_string()),
    })
}

/// The id of a target in marker names: `github`, or the kind and the first 8 hex digits
/// of the SHA-256 of the URL (`webhook-1a2b3c4d`): stable, distinct per URL, and no
/// secret.
pub fn target_id(spec: &TargetSpec) -> String {
    let digest = |u: &str| {
        let d = Sha256::digest(u.as_bytes());
        base16ct::lower::encode_string(&d[..4])
    };
    match spec {
        TargetSpec::Webhook(u) => format!("webhook-{}", digest(u)),
        TargetSpec::Slack(u) => format!("slack-{}", digest(u)),
        TargetSpec::GitHub => "github".into(),
    }
}

/// Whether a target receives events of this kind. Webhooks and Slack get the public
/// events; `github` gets commit statuses, deployments (started, deployed, rolled back),
/// the failure of a deploy step (its deployment's `failure` status) and pull-request
/// comments.
pub fn accepts(spec: &TargetSpec, ev: &Event) -> bool {
    match spec {
        TargetSpec::Webhook(_) | TargetSpec::Slack(_) => EventKind::PUBLIC.contains(&ev.event),
        TargetSpec::GitHub => match ev.event {
            EventKind::StepStatus
            | EventKind::DeployStarted
            | EventKind::EnvDeployed
            | EventKind::EnvRolledBack
            | EventKind::PrCommented => true,
            EventKind::StepFailed | EventKind::StepTimedOut => ev.environment.is_some(),
            _ => false,
        },
    }
}

/// `X-Konductor-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the body.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    format!(
        "sha256={}",
        base16ct::lower::encode_string(&mac.finalize().into_bytes())
    )
}

/// Escape text for Slack's mrkdwn (`&`, `<`, `>`).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack incoming-webhook message: a fallback `text` and blocks: the message; for a
/// waiting gate, the unblock command; the job's (or board's) link. Every section's text
/// is at most [`SLACK_SECTION_MAX`] characters.
pub fn slack_message(ev: &Event) -> serde_json::Value {
    let section = |text: String| {
        serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&text, SLACK_SECTION_MAX)}
        })
    };
    let title = match ev.event {
        EventKind::StepFailed | EventKind::TrainFailed => ":red_circle:",
        EventKind::StepTimedOut => ":hourglass:",
        EventKind::GateWaiting => ":raised_hand:",
        EventKind::EnvDeployed | EventKind::TrainSucceeded => ":large_green_circle:",
        EventKind::EnvRolledBack => ":rewind:",
        EventKind::EnvFrozen => ":snowflake:",
        _ => ":white_circle:",
    };
    let text = format!("{title} {}", slack_escape(&ev.message));
    let mut blocks = vec![section(text.clone())];
    if let Some(cmd) = &ev.command {
        blocks.push(section(format!("```{}```", slack_escape(cmd))));
    }
    if let Some(url) = ev
        .url
        .as_deref()
        .filter(|u| u.len() < SLACK_SECTION_MAX - 40)
    {
        let label = if ev.step.is_some() && ev.event != EventKind::GateWaiting {
            "the job"
        } else {
            "the board"
        };
        // A URL with `|` or `>` would break Slack's link syntax: show it escaped instead.
        let link = if url.contains(['|', '>', '<', ' ']) {
            slack_escape(url)
        } else {
            format!("<{url}|Open {label}>")
        };
        blocks.push(serde_json::json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": link}]
        }));
    }
    serde_json::json!({
        "text": cut(&text, SLACK_SECTION_MAX),
        "blocks": blocks,
    })
}

/// A commit status's `description`: GitHub takes at most 140 characters.
pub fn status_description(ev: &Event) -> String {
    cut_plain(&ev.message, 140)
}

/// `text` on one line, at most `max` characters (ending with `…` when cut).
pub fn cut_plain(text: &str, max: usize) -> String {
    let one: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one.chars().count() <= max {
        return one;
    }
    let mut s: String = one.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// The marker tag names of one delivery: `notify=<event id>=<target>.<k>` claims
/// attempt k; `…<k>=sent` and `…<k>=failed` record how it went. Outside `release=`, so no
/// CI filter matches them; `notify=<train>=` first, so `gc` finds a train's markers by
/// prefix.
pub fn marker_base(event_id: &str, target: &str) -> String {
    format!("notify={event_id}={target}")
}

/// The glob of every marker of one train.
pub fn train_marker_glob(train: &str) -> String {
    format!("notify={train}=*")
}

/// The train a marker belongs to (`notify=<N.P>=…`), if the name is a marker.
pub fn marker_train(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("notify=")?;
    rest.split('=').next()
}

/// How a delivery's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: never sent again.
    Sent,
    /// The target refused it or could not be reached.
    Failed,
}

/// One attempt as the markers record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptMarks {
    /// When the claim was made (its tagger time), if its tag is there.
    pub claimed_at: Option<i64>,
    /// The result, with its time.
    pub result: Option<(Outcome, i64)>,
}

/// The markers of one delivery, by attempt number, from tag names under
/// [`marker_base`] and their tagger times. Other names are ignored.
pub fn read_marks(
    base: &str,
    names: &[(String, i64)],
) -> std::collections::BTreeMap<u32, AttemptMarks> {
    let mut out: std::collections::BTreeMap<u32, AttemptMarks> = Default::default();
    let prefix = format!("{base}.");
    for (name, at) in names {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let (k, result) = match rest.split_once('=') {
            Some((k, "sent")) => (k, Some(Outcome::Sent)),
            Some((k, "failed")) => (k, Some(Outcome::Failed)),
            Some(_) => continue,
            None => (rest, None),
        };
        let Ok(n) = k.parse::<u32>() else { continue };
        if n == 0 || n.to_string() != k {
            continue;
        }
        let k = n;
        let e = out.entry(k).or_default();
        match result {
            Some(r) => e.result = Some((r, *at)),
            None => e.claimed_at = Some(*at),
        }
    }
    out
}

/// When to try again, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; then the delivery is given up.
    pub max_attempts: u32,
    /// The wait after the first failed attempt, in seconds; doubled after each further one.
    pub backoff: i64,
    /// How long a claim without a result counts as in flight, in seconds; after that its
    /// claimant is taken as lost and the next attempt is claimed.
    pub lease: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            backoff: 30,
            lease: 120,
        }
    }
}

/// What to do about one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delivered already.
    Done,
    /// Every attempt failed; nothing more is tried.
    GaveUp,
    /// Another process claimed attempt k and may still be delivering it.
    InFlight(u32),
    /// Attempt k failed; the next may be claimed at this time.
    Wait(u32, i64),
    /// Claim attempt k now.
    Claim(u32),
}

/// Decide from the markers, the clock and the policy. A delivered event is never sent
/// again; a failed attempt is followed by the next after `backoff · 2^(k−1)` seconds; a
/// claim without a result older than `lease` is a lost claimant, and the next attempt is
/// claimed; after `max_attempts` attempts, nothing more.
pub fn decide(
    marks: &std::collections::BTreeMap<u32, AttemptMarks>,
    now: i64,
    p: &RetryPolicy,
) -> Decision {
    if marks
        .values()
        .any(|m| matches!(m.result, Some((Outcome::Sent, _))))
    {
        return Decision::Done;
    }
    let Some((&k, top)) = marks.iter().next_back() else {
        return Decision::Claim(1);
    };
    match top.result {
        Some((_, failed_at)) => {
            if k >= p.max_attempts {
                return Decision::GaveUp;
            }
            let shift = (k - 1).min(20);
            let next = failed_at.saturating_add(p.backoff.saturating_mul(1 << shift));
            if now >= next {
                Decision::Claim(k + 1)
            } else {
                Decision::Wait(k, next)
            }
        }
        None => {
            let claimed = top.claimed_at.unwrap_or(i64::MIN / 2);
            if now.saturating_sub(claimed) < p.lease {
                Decision::InFlight(k)
            } else if k >= p.max_attempts {
                Decision::GaveUp
            } else {
                Decision::Claim(k + 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn marks(v: &[(&str, i64)]) -> std::collections::BTreeMap<u32, AttemptMarks> {
        let names: Vec<(String, i64)> = v.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        read_marks("notify=1.0=step.failed=a.1=webhook-00ff00ff", &names)
    }

    #[test]
    fn a_sent_delivery_is_never_claimed_again() {
        let p = RetryPolicy::default();
        let m = marks(&[
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.1", 0),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.1=sent", 1),
        ]);
        assert_eq!(decide(&m, 1_000_000, &p), Decision::Done);
        // Even with a later claim whose claimant was lost.
        let m = marks(&[
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.1=sent", 1),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.2", 5),
        ]);
        assert_eq!(decide(&m, 1_000_000, &p), Decision::Done);
    }

    #[test]
    fn failures_back_off_then_give_up() {
        let p = RetryPolicy::default();
        assert_eq!(decide(&marks(&[]), 0, &p), Decision::Claim(1));
        let m = marks(&[
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.1", 100),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.1=failed", 100),
        ]);
        assert_eq!(decide(&m, 129, &p), Decision::Wait(1, 130));
        assert_eq!(decide(&m, 130, &p), Decision::Claim(2));
        let m = marks(&[
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.3", 100),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.3=failed", 100),
        ]);
        assert_eq!(decide(&m, 100 + 119, &p), Decision::Wait(3, 220));
        let m = marks(&[("notify=1.0=step.failed=a.1=webhook-00ff00ff.6=failed", 100)]);
        assert_eq!(decide(&m, i64::MAX, &p), Decision::GaveUp);
    }

    #[test]
    fn a_lost_claimant_is_replaced_after_the_lease() {
        let p = RetryPolicy::default();
        let m = marks(&[("notify=1.0=step.failed=a.1=webhook-00ff00ff.1", 100)]);
        assert_eq!(decide(&m, 219, &p), Decision::InFlight(1));
        assert_eq!(decide(&m, 220, &p), Decision::Claim(2));
    }

    #[test]
    fn junk_marker_names_are_not_attempts() {
        let m = marks(&[
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.0", 1),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.01", 1),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.x=sent", 1),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff.1=maybe", 1),
            ("notify=1.0=step.failed=a.1=webhook-00ff00ff0.1=sent", 1),
        ]);
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn specs_parse_and_errors_hide_the_secret_part() {
        assert_eq!(parse_spec("github"), Ok(TargetSpec::GitHub));
        assert_eq!(
            parse_spec("webhook+https://example.com/hook"),
            Ok(TargetSpec::Webhook("https://example.com/hook".into()))
        );
        let e =
            parse_spec("slack+https://user:hunter2@hooks.slack.com/services/T/B/XYZ").unwrap_err();
        assert!(
            e.contains("credentials") && !e.contains("hunter2") && !e.contains("XYZ"),
            "{e}"
        );
        let e = parse_spec("email+mailto:te@example.com").unwrap_err();
        assert!(e.starts_with("unknown notification target"), "{e}");
        let e = parse_spec("slack+hooks.slack.com/services/T/B/SECRETPATH").unwrap_err();
        assert!(!e.contains("SECRETPATH"), "{e}");
        let e = parse_spec("https://hooks.slack.com/services/T/B/SECRETPATH").unwrap_err();
        assert!(e.contains("unknown") && !e.contains("SECRETPATH"), "{e}");
        assert!(parse_spec("webhook+").is_err());
        assert!(parse_spec("webhook+https://").is_err());
    }

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn event(message: &str) -> Event {
        Event {
            version: PAYLOAD_VERSION,
            event: EventKind::GateWaiting,
            id: "1.0=gate.waiting=gate".into(),
            train: "1.0".into(),
            step: Some("gate".into()),
            attempt: None,
            rerun: None,
            environment: None,
            commit: "0".repeat(40),
            url: Some("https://ci.example.com/1".into()),
            message: message.into(),
            command: Some("konductor unblock --train 1.0 --step gate --reason \"…\"".into()),
            at: None,
            by: None,
            reason: None,
            until: None,
            remote: "/srv/app.git".into(),
            status: None,
            at_secs: None,
            pull_request: None,
        }
    }

    proptest! {
        #[test]
        fn cut_never_exceeds_its_limit(s in "[a-z<>&\n é]{0,5000}", max in 60usize..4000) {
            let c = cut(&s, max);
            prop_assert!(c.chars().count() <= max);
            if s.chars().count() <= max { prop_assert_eq!(c, s); }
        }

        #[test]
        fn slack_sections_stay_within_slacks_limit(s in "[a-z<>&\n]{0,9000}") {
            let m = slack_message(&event(&s));
            for b in m["blocks"].as_array().unwrap() {
                if let Some(t) = b["text"]["text"].as_str() {
                    prop_assert!(t.chars().count() <= SLACK_SECTION_MAX);
                }
            }
            prop_assert!(m["text"].as_str().unwrap().chars().count() <= SLACK_SECTION_MAX);
        }
    }

    #[test]
    fn pull_request_comments_and_rollbacks_go_to_github_only_as_designed() {
        let mut e = event("m");
        let hook = TargetSpec::Webhook("https://example.com/h".into());
        for (kind, to_hook, to_github) in [
            (EventKind::PrCommented, false, true),
            (EventKind::EnvRolledBack, true, true),
            (EventKind::EnvFrozen, true, false),
        ] {
            e.event = kind;
            assert_eq!(accepts(&hook, &e), to_hook, "{kind:?}");
            assert_eq!(accepts(&TargetSpec::GitHub, &e), to_github, "{kind:?}");
        }
    }

    #[test]
    fn a_waiting_gate_carries_its_unblock_command_to_slack() {
        let m = slack_message(&event("train 1.0: gate `gate` waits"));
        let text = m.to_string();
        assert!(
            text.contains("konductor unblock --train 1.0 --step gate"),
            "{text}"
        );
        assert!(
            text.contains("<https://ci.example.com/1|Open the board>"),
            "{text}"
        );
    }
}
