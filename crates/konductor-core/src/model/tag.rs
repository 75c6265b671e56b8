//! The tag grammar: parsing and formatting of every tag Konductor reads or writes.
//!
//! ```text
//! release=N.P                          train tag (train N, patch P)
//! release=N.P=<step>.<job>             trigger tag (job = attempt number, from 1)
//! release=N.P=<step>.<job>=<state>     state tag, state ∈ started|success|failure|timeout
//! release=N.P=<step>.<job>=rerun.<k>=<state>  state of re-run k (from 1) of the attempt
//! release=N.P=<step>=unblocked         manual gate attestation
//! release=N.P=<step>=skipped           changed-file condition not met
//! release=N.P=<step>=superseded        deploy step never to run: a newer train has its environment
//! release=N.P=cancelled                train cancelled
//! ```
//!
//! See `docs/tag-protocol.md`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every Konductor tag starts with this (after `refs/tags/`).
pub const PREFIX: &str = "release=";

/// Longest step name accepted, so that tags stay readable and well under ref limits.
pub const MAX_STEP_LEN: usize = 64;

/// Largest train number the grammar accepts. Nine digits: every `N + 1` a reader or writer
/// computes (the next train, a probe above the newest) stays far inside a `u32`, and a tag
/// with a larger number is malformed, so no reader ever sees one.
pub const MAX_TRAIN: u32 = 999_999_999;
/// Largest patch (hotfix) number the grammar accepts; see [`MAX_TRAIN`].
pub const MAX_PATCH: u32 = 999_999_999;
/// Largest job id (attempt number) the grammar accepts; see [`MAX_TRAIN`].
pub const MAX_JOB: u32 = 999_999_999;
/// The largest re-run number the grammar reads (the same room as job ids).
pub const MAX_RERUN: u32 = 999_999_999;

/// A train id: `N.P`, train number N and patch (hotfix) number P.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrainId {
    /// Train number.
    pub number: u32,
    /// Patch number: 0 for the train itself, 1.. for hotfixes.
    pub patch: u32,
}

impl TrainId {
    /// A train id from its parts.
    pub fn new(number: u32, patch: u32) -> Self {
        Self { number, patch }
    }
}

impl fmt::Display for TrainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.number, self.patch)
    }
}

impl FromStr for TrainId {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, TagError> {
        let (n, p) = s
            .split_once('.')
            .ok_or_else(|| TagError::new(s, "a train id is `N.P`, e.g. `42.0`"))?;
        Ok(TrainId::new(
            number(s, n, "train number", MAX_TRAIN)?,
            number(s, p, "patch number", MAX_PATCH)?,
        ))
    }
}

/// The state a job reports (or konductor records, for `timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// The job started.
    Started,
    /// The job succeeded.
    Success,
    /// The job failed.
    Failure,
    /// Konductor gave up waiting for the job (recorded by `tick`).
    Timeout,
}

impl JobState {
    /// All states, in grammar order.
    pub const ALL: [JobState; 4] = [
        JobState::Started,
        JobState::Success,
        JobState::Failure,
        JobState::Timeout,
    ];

    /// The tag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Started => "started",
            JobState::Success => "success",
            JobState::Failure => "failure",
            JobState::Timeout => "timeout",
        }
    }

    /// Whether the state ends the job.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Started)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Self, TagError> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                TagError::new(
                    s,
                    "unknown state; expected one of `started`, `success`, `failure`, `timeout`",
                )
            })
    }
}

/// A step-level control verb (`release=N.P=<step>=<verb>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepVerb {
    /// A manual gate was unblocked.
    Unblocked,
    /// A conditional step was skipped (its `if_changed` globs matched nothing).
    Skipped,
    /// An environment's deploy step will never run: a newer train deployed there, or is
    /// deploying (see `docs/sdd.md`, "Environments").
    Superseded,
}

impl StepVerb {
    /// The tag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StepVerb::Unblocked => "unblocked",
            StepVerb::Skipped => "skipped",
            StepVerb::Superseded => "superseded",
        }
    }
}

/// One parsed Konductor tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// `release=N.P`
    Train(TrainId),
    /// `release=N.P=<step>.<job>`
    Trigger(Trigger),
    /// `release=N.P=<step>.<job>=<state>`
    State(Trigger, JobState),
    /// `release=N.P=<step>.<job>=rerun.<k>=<state>`: a state of re-run `k` (from 1) of an
    /// attempt, reported when the CI ran the same trigger again after it ended.
    Rerun(Trigger, u32, JobState),
    /// `release=N.P=<step>=<verb>`
    Step(TrainId, String, StepVerb),
    /// `release=N.P=cancelled`
    Cancelled(TrainId),
}

/// A trigger: one attempt (job) of one step on one train.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Trigger {
    /// The train.
    pub train: TrainId,
    /// The step name.
    pub step: String,
    /// The job id: the attempt number, from 1.
    pub job: u32,
}

impl Trigger {
    /// A trigger from its parts.
    pub fn new(train: TrainId, step: impl Into<String>, job: u32) -> Self {
        Self {
            train,
            step: step.into(),
            job,
        }
    }

    /// The tag name of this trigger.
    pub fn tag(&self) -> Tag {
        Tag::Trigger(self.clone())
    }

    /// The tag name of this trigger's state.
    pub fn state_tag(&self, state: JobState) -> Tag {
        Tag::State(self.clone(), state)
    }

    /// The tag name of a state of run `run` of this trigger: run 0 is the first run (a
    /// plain state tag), run `k` ≥ 1 its re-run `k`.
    pub fn run_state_tag(&self, run: u32, state: JobState) -> Tag {
        if run == 0 {
            self.state_tag(state)
        } else {
            Tag::Rerun(self.clone(), run, state)
        }
    }
}

impl Tag {
    /// The train this tag belongs to.
    pub fn train(&self) -> TrainId {
        match self {
            Tag::Train(t) | Tag::Cancelled(t) | Tag::Step(t, _, _) => *t,
            Tag::Trigger(tr) | Tag::State(tr, _) | Tag::Rerun(tr, _, _) => tr.train,
        }
    }

    /// Parse a tag name (with or without `refs/tags/`). `Ok(None)` if it is not under `release=`.
    pub fn parse_any(name: &str) -> Result<Option<Tag>, TagError> {
        let name = name.strip_prefix("refs/tags/").unwrap_or(name);
        if !name.starts_with(PREFIX) {
            return Ok(None);
        }
        name.parse().map(Some)
    }

    /// The full ref name, `refs/tags/...`.
    pub fn refname(&self) -> String {
        format!("refs/tags/{self}")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tag::Train(t) => write!(f, "{PREFIX}{t}"),
            Tag::Trigger(tr) => write!(f, "{PREFIX}{}={}.{}", tr.train, tr.step, tr.job),
            Tag::State(tr, st) => write!(f, "{PREFIX}{}={}.{}={st}", tr.train, tr.step, tr.job),
            Tag::Rerun(tr, k, st) => write!(
                f,
                "{PREFIX}{}={}.{}=rerun.{k}={st}",
                tr.train, tr.step, tr.job
            ),
            Tag::Step(t, step, verb) => write!(f, "{PREFIX}{t}={step}={}", verb.as_str()),
            Tag::Cancelled(t) => write!(f, "{PREFIX}{t}=cancelled"),
        }
    }
}

impl FromStr for Tag {
    type Err = TagError;

    fn from_str(full: &str) -> Result<Tag, TagError> {
        let s = full.strip_prefix("refs/tags/").unwrap_or(full);
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| TagError::new(full, "a Konductor tag starts with `release=`"))?;
        let parts: Vec<&str> = rest.split('=').collect();
        let train: TrainId = parts[0]
            .parse()
            .map_err(|e: TagError| TagError::new(full, e.reason))?;
        match parts.len() {
            1 => Ok(Tag::Train(train)),
            2 if parts[1] == "cancelled" => Ok(Tag::Cancelled(train)),
            2 => Ok(Tag::Trigger(parse_trigger(full, train, parts[1])?)),
            3 if parts[1].contains('.') => {
                let tr = parse_trigger(full, train, parts[1])?;
                let st: JobState = parts[2]
                    .parse()
                    .map_err(|e: TagError| TagError::new(full, e.reason))?;
                Ok(Tag::State(tr, st))
            }
            3 => {
                validate_step_name(parts[1]).map_err(|r| TagError::new(full, r))?;
                let verb =
                    match parts[2] {
                        "unblocked" => StepVerb::Unblocked,
                        "skipped" => StepVerb::Skipped,
                        "superseded" => StepVerb::Superseded,
                        _ => return Err(TagError::new(
                            full,
                            "unknown step verb; expected `unblocked`, `skipped` or `superseded`",
                        )),
                    };
                Ok(Tag::Step(train, parts[1].to_string(), verb))
            }
            4 if parts[1].contains('.') && parts[2].starts_with("rerun") => {
                let tr = parse_trigger(full, train, parts[1])?;
                let k = parts[2]
                    .strip_prefix("rerun.")
                    .ok_or_else(|| TagError::new(full, "expected `rerun.<k>` after the trigger"))?;
                let k = number(full, k, "re-run number", MAX_RERUN)?;
                if k == 0 {
                    return Err(TagError::new(full, "re-run numbers start at 1"));
                }
                let st: JobState = parts[3]
                    .parse()
                    .map_err(|e: TagError| TagError::new(full, e.reason))?;
                Ok(Tag::Rerun(tr, k, st))
            }
            _ => Err(TagError::new(full, "too many `=`-separated parts")),
        }
    }
}

fn parse_trigger(full: &str, train: TrainId, s: &str) -> Result<Trigger, TagError> {
    let (step, job) = s
        .rsplit_once('.')
        .ok_or_else(|| TagError::new(full, "expected `<step>.<job>` after the train id"))?;
    validate_step_name(step).map_err(|r| TagError::new(full, r))?;
    let job = number(full, job, "job id", MAX_JOB)?;
    if job == 0 {
        return Err(TagError::new(full, "job ids start at 1"));
    }
    Ok(Trigger::new(train, step, job))
}

fn number(full: &str, s: &str, what: &str, max: u32) -> Result<u32, TagError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TagError::new(full, format!("{what} `{s}` is not a number")));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(TagError::new(
            full,
            format!("{what} `{s}` has a leading zero"),
        ));
    }
    let too_large = || TagError::new(full, format!("{what} `{s}` is too large (at most {max})"));
    // Longer than `max` has digits: too large, whatever a u32 could hold.
    if s.len() > max.to_string().len() {
        return Err(too_large());
    }
    s.parse::<u32>()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(too_large)
}

/// Check that a step name can live in a tag: letters, digits, `-` and `_`.
pub fn validate_step_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty step name".into());
    }
    if name.len() > MAX_STEP_LEN {
        return Err(format!(
            "step name `{}…` is longer than {MAX_STEP_LEN} characters",
            &name[..name.char_indices().nth(20).map_or(name.len(), |(i, _)| i)]
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "step name `{}` contains {}; only letters, digits, `-` and `_` can live in a tag",
            name.escape_debug(),
            describe_char(c)
        ));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        c if c.is_control() => format!("control character {:?}", c),
        c => format!("`{c}`"),
    }
}

/// A tag under `release=` that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed tag `{tag}`: {reason}")]
pub struct TagError {
    /// The offending tag (escaped for display).
    pub tag: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TagError {
    fn new(tag: &str, reason: impl Into<String>) -> Self {
        let mut t: String = tag.escape_debug().collect();
        if t.len() > 200 {
            let cut = t.char_indices().nth(120).map_or(t.len(), |(i, _)| i);
            t.truncate(cut);
            t.push('…');
        }
        Self {
            tag: t,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_form() {
        let t = TrainId::new(42, 0);
        let cases = [
            ("release=42.0", Tag::Train(t)),
            (
                "release=42.0=unit-tests.1",
                Tag::Trigger(Trigger::new(t, "unit-tests", 1)),
            ),
            (
                "refs/tags/release=42.0=unit-tests.12=success",
                Tag::State(Trigger::new(t, "unit-tests", 12), JobState::Success),
            ),
            (
                "release=42.0=gate=unblocked",
                Tag::Step(t, "gate".into(), StepVerb::Unblocked),
            ),
            (
                "release=42.0=gate=skipped",
                Tag::Step(t, "gate".into(), StepVerb::Skipped),
            ),
            ("release=42.0=cancelled", Tag::Cancelled(t)),
            (
                "release=42.0=unit-tests.3=rerun.2=success",
                Tag::Rerun(Trigger::new(t, "unit-tests", 3), 2, JobState::Success),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<Tag>().unwrap(), want, "{s}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "release=",
            "release=42",
            "release=42.",
            "release=.0",
            "release=042.0",
            "release=42.0=",
            "release=42.0=unit-tests",
            "release=42.0=unit-tests.",
            "release=42.0=unit-tests.0",
            "release=42.0=unit-tests.x",
            "release=42.0=unit-tests.1=done",
            "release=42.0=unit-tests.1=success=again",
            "release=42.0=unit tests.1",
            "release=42.0=unit/tests.1",
            "release=42.0=.1",
            "release=42.0=gate=approved",
            "release=99999999999.0",
            "release=4.2.0",
            "release=42.0=unit-tests.1=rerun.0=started",
            "release=42.0=unit-tests.1=rerun.01=started",
            "release=42.0=unit-tests.1=rerun.1",
            "release=42.0=unit-tests.1=rerun=success",
            "release=42.0=unit-tests.1=reruns.1=success",
            "release=42.0=unit-tests.1=rerun.1=done",
            "release=42.0=unit-tests.1=rerun.1=success=again",
            "release=42.0=gate=rerun.1=success",
        ] {
            let err = bad.parse::<Tag>().unwrap_err();
            assert!(err.to_string().starts_with("malformed tag"), "{bad}: {err}");
        }
        assert_eq!(Tag::parse_any("v1.2.3").unwrap(), None);
    }

    #[test]
    fn circleci_seed_filter_matches_triggers_not_states() {
        let re = regex::Regex::new(r"^release=\d+\.\d+=unit-tests\.\d+$").unwrap();
        let tr = Trigger::new(TrainId::new(42, 0), "unit-tests", 3);
        assert!(re.is_match(&tr.tag().to_string()));
        for st in JobState::ALL {
            assert!(!re.is_match(&tr.state_tag(st).to_string()));
            assert!(!re.is_match(&tr.run_state_tag(1, st).to_string()));
        }
    }

    #[test]
    fn numbers_past_the_maximum_are_too_large_not_wrapped() {
        for (tag, what) in [
            (
                "release=4294967295.0",
                "train number `4294967295` is too large (at most 999999999)",
            ),
            (
                "release=1000000000.0",
                "train number `1000000000` is too large (at most 999999999)",
            ),
            (
                "release=99999999999999999999.0",
                "train number `99999999999999999999` is too large",
            ),
            (
                "release=1.1000000000",
                "patch number `1000000000` is too large (at most 999999999)",
            ),
            (
                "release=1.0=a.1000000000",
                "job id `1000000000` is too large (at most 999999999)",
            ),
            (
                "release=1.0=a.4294967296=started",
                "job id `4294967296` is too large",
            ),
        ] {
            let e = tag.parse::<Tag>().unwrap_err().to_string();
            assert!(e.contains(what), "{tag}: {e}");
        }
        let top = format!("release={MAX_TRAIN}.{MAX_PATCH}={}.{MAX_JOB}", "a");
        let t: Tag = top.parse().unwrap();
        assert_eq!(t.to_string(), top);
        // Room for the arithmetic every reader and writer does on them.
        assert!(MAX_TRAIN.checked_add(1000).is_some());
        assert!(MAX_JOB.checked_add(1).is_some());
    }

    fn arb_step() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{1,64}"
    }

    fn arb_tag() -> impl Strategy<Value = Tag> {
        let train = || (0..=MAX_TRAIN, 0..=MAX_PATCH).prop_map(|(n, p)| TrainId::new(n, p));
        let trig =
            || (train(), arb_step(), 1..=MAX_JOB).prop_map(|(t, s, j)| Trigger::new(t, s, j));
        prop_oneof![
            train().prop_map(Tag::Train),
            trig().prop_map(Tag::Trigger),
            (trig(), prop::sample::select(JobState::ALL.to_vec()))
                .prop_map(|(t, s)| Tag::State(t, s)),
            (
                trig(),
                1u32..=MAX_RERUN,
                prop::sample::select(JobState::ALL.to_vec())
            )
                .prop_map(|(t, k, s)| Tag::Rerun(t, k, s)),
            (
                train(),
                arb_step(),
                prop::sample::select(vec![StepVerb::Unblocked, StepVerb::Skipped])
            )
                .prop_map(|(t, s, v)| Tag::Step(t, s, v)),
            train().prop_map(Tag::Cancelled),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(tag in arb_tag()) {
            let s = tag.to_string();
            prop_assert_eq!(s.parse::<Tag>().unwrap(), tag.clone());
            prop_assert_eq!(Tag::parse_any(&tag.refname()).unwrap(), Some(tag));
        }

        #[test]
        fn numbers_round_trip_or_are_refused_at_the_bound(n in prop_oneof![
            0u64..=2_000,
            999_999_000u64..=1_000_001_000,
            4_294_967_000u64..=4_294_968_000,
            any::<u64>(),
        ]) {
            for tag in [format!("release={n}.0"), format!("release=1.{n}"), format!("release=1.0=a.{n}")] {
                match tag.parse::<Tag>() {
                    Ok(t) => {
                        prop_assert!(n <= u64::from(MAX_TRAIN));
                        prop_assert_eq!(t.to_string(), tag);
                    }
                    Err(e) => prop_assert!(
                        n > u64::from(MAX_TRAIN) && e.reason.contains("too large")
                            || n == 0 && tag.ends_with(".0") && e.reason.contains("start at 1"),
                        "{}: {}", tag, e
                    ),
                }
            }
        }

        #[test]
        fn never_panics(s in "release=[0-9a-z=._ /-]{0,40}") {
            let _ = s.parse::<Tag>();
        }

        #[test]
        fn never_panics_on_any_unicode(s in "\\PC{0,60}") {
            let _ = Tag::parse_any(&s);
            let _ = format!("release={s}").parse::<Tag>();
        }
    }
}
