//! What one train's tags say: the observed facts the planner works from.
//!
//! This module turns raw tag records (name, commit, tagger, time, message) into an
//! [`Observed`] train, and refuses what cannot be trusted: state tags on another commit,
//! states without their trigger, tags of steps the graph does not have. Each refusal is a
//! warning, never an error: junk on the remote must not stop a train.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::tag::{JobState, StepVerb, Tag, TrainId};

/// One tag as read from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The tag name without `refs/tags/`.
    pub name: String,
    /// The commit it points to (peeled).
    pub commit: String,
    /// `Name <email>` of the tagger, for annotated tags.
    pub tagger: Option<String>,
    /// Tagger time, seconds since the epoch, for annotated tags.
    pub time: Option<i64>,
    /// The tag message, for annotated tags (without any signature block).
    pub message: String,
    /// The verified signer (principal of the allowed signers file), when verification is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Why the signature did not verify, when verification is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_error: Option<String>,
}

/// Who did something, when, and what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The tagger (`Name <email>`), or `unknown` for a lightweight tag.
    pub by: String,
    /// Seconds since the epoch (0 when unknown).
    pub at: i64,
    /// The tag message, trimmed.
    pub message: String,
    /// The tag name.
    pub tag: String,
    /// The verified signer, when signature verification is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

impl Event {
    fn from_record(r: &TagRecord) -> Self {
        Event {
            by: r.tagger.clone().unwrap_or_else(|| "unknown".into()),
            // Anyone can write any tagger time: see `time::clamp`.
            at: crate::model::time::clamp(r.time.unwrap_or(0)),
            message: r.message.trim().to_string(),
            tag: r.name.clone(),
            signer: r.signer.clone(),
        }
    }

    /// The value of a `key: value` line of the message, if any (see [`message_field`]).
    pub fn field(&self, key: &str) -> Option<&str> {
        message_field(&self.message, key)
    }

    /// Who did it: the verified signer when signatures are checked, else the message's
    /// `key:` field (`by` or `opened-by`), else the tagger.
    pub fn who(&self, key: &str) -> String {
        self.signer
            .clone()
            .or_else(|| self.field(key).map(str::to_string))
            .unwrap_or_else(|| self.by.clone())
    }
}

/// The fields Konductor writes itself. Each is read from its **first** line after the
/// summary: every writer puts its own fields before any free text, so a line that free
/// text slipped in later (a multi-line `--reason` of an older version) is never read as
/// one. Other keys (`job_url`, from a job's info strings) keep the last line.
pub const OWN_FIELDS: [&str; 3] = ["by", "opened-by", "reason"];

/// The value of a `key: value` (or `key:value`) line in a tag message. The first line,
/// the summary, is never a field.
pub fn message_field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    let value = |l: &'a str| {
        let rest = l.trim().strip_prefix(key)?.strip_prefix(':')?;
        Some(rest.trim())
    };
    let body: Vec<&str> = message.lines().skip(1).collect();
    if OWN_FIELDS.contains(&key) {
        body.into_iter().find_map(value)
    } else {
        body.into_iter().rev().find_map(value)
    }
}

/// Refuse free text that could break out of its one line of a tag message: line breaks
/// and every other control character, Unicode line and paragraph separators, and the
/// bidirectional overrides that make a terminal show text in another order than it is.
/// `what` names the input (`` `--reason` ``).
pub fn check_one_line(what: &str, text: &str) -> Result<(), String> {
    let bad = text.chars().enumerate().find(|(_, c)| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            )
    });
    match bad {
        None => Ok(()),
        Some((i, c)) => {
            let kind = match c {
                '\n' | '\r' | '\u{2028}' | '\u{2029}' => "a line break",
                _ if c.is_control() => "a control character",
                _ => "a bidirectional text control",
            };
            Err(format!(
                "{what} holds {kind} (U+{:04X} at character {}); it is recorded as one line of the tag message, so write it on one line without control characters",
                c as u32,
                i + 1
            ))
        }
    }
}

/// One attempt (job) of a step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The trigger tag.
    pub triggered: Option<Event>,
    /// Reported states of the first run.
    pub states: BTreeMap<JobState, Event>,
    /// Re-runs of the same trigger by the CI (`…=rerun.<k>=<state>`), by re-run number
    /// (from 1), each with its states.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reruns: BTreeMap<u32, BTreeMap<JobState, Event>>,
}

impl Attempt {
    /// The run that counts: the newest re-run (by number, not by time), else 0, the first run.
    pub fn run(&self) -> u32 {
        self.reruns.keys().next_back().copied().unwrap_or(0)
    }

    /// The states of the run that counts (see [`Attempt::run`]).
    pub fn current(&self) -> &BTreeMap<JobState, Event> {
        self.reruns.values().next_back().unwrap_or(&self.states)
    }

    /// Whether no run of the attempt ever reported anything.
    pub fn never_started(&self) -> bool {
        self.states.is_empty() && self.reruns.is_empty()
    }

    /// The outcome that counts: that of the newest run; within a run, timeout beats
    /// failure beats success.
    pub fn outcome(&self) -> Option<JobState> {
        run_outcome(self.current())
    }

    /// Whether the attempt ended in failure (failure or timeout).
    pub fn failed(&self) -> bool {
        matches!(self.outcome(), Some(JobState::Failure | JobState::Timeout))
    }
}

/// The outcome of one run's states: timeout beats failure beats success beats started.
pub fn run_outcome(states: &BTreeMap<JobState, Event>) -> Option<JobState> {
    [
        JobState::Timeout,
        JobState::Failure,
        JobState::Success,
        JobState::Started,
    ]
    .into_iter()
    .find(|s| states.contains_key(s))
}

/// Everything the tags of one train say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// The train.
    pub train: TrainId,
    /// The train's commit.
    pub commit: String,
    /// The train tag.
    pub opened: Event,
    /// Attempts by step, then by job id.
    pub attempts: BTreeMap<String, BTreeMap<u32, Attempt>>,
    /// The highest job id any tag of a step uses, trusted or not. A new attempt takes the
    /// next id: a name squatted by an ignored tag is never reused.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub taken: BTreeMap<String, u32>,
    /// Manual gates unblocked.
    pub unblocked: BTreeMap<String, Event>,
    /// Conditional steps skipped.
    pub skipped: BTreeMap<String, Event>,
    /// Deploy steps superseded (a newer train has their environment).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub superseded: BTreeMap<String, Event>,
    /// Set when the train was cancelled.
    pub cancelled: Option<Event>,
    /// What was ignored, and why.
    pub warnings: Vec<String>,
}

impl Observed {
    /// A train that was opened and has nothing else yet.
    pub fn opened(train: TrainId, commit: String, opened: Event) -> Observed {
        Observed {
            train,
            commit,
            opened,
            attempts: BTreeMap::new(),
            taken: BTreeMap::new(),
            unblocked: BTreeMap::new(),
            skipped: BTreeMap::new(),
            superseded: BTreeMap::new(),
            cancelled: None,
            warnings: Vec::new(),
        }
    }

    /// Build a train from its tag records. `records` may contain other trains' tags and
    /// tags that are not Konductor's; they are skipped. Returns `None` if the train tag
    /// itself is missing.
    pub fn from_records(train: TrainId, records: &[TagRecord]) -> Option<Observed> {
        Self::from_records_checked(train, records, false)
    }

    /// Like [`Observed::from_records`]; with `require_signed`, tags without a verified
    /// signature are ignored (and reported), the train tag included.
    pub fn from_records_checked(
        train: TrainId,
        records: &[TagRecord],
        require_signed: bool,
    ) -> Option<Observed> {
        let mut unsigned = Vec::new();
        let all = records;
        let kept: Vec<TagRecord>;
        let records = if require_signed {
            kept = records
                .iter()
                .filter(|r| {
                    let ok = r.signer.is_some();
                    if !ok && matches!(Tag::parse_any(&r.name), Ok(Some(t)) if t.train() == train) {
                        unsigned.push(format!(
                            "ignored `{}`: {}",
                            r.name,
                            r.signature_error
                                .as_deref()
                                .unwrap_or("not signed by an allowed signer")
                        ));
                    }
                    ok
                })
                .cloned()
                .collect();
            &kept[..]
        } else {
            records
        };
        let mut obs =
            Self::from_trusted_names(train, records, all.iter().map(|r| r.name.as_str()))?;
        let mut shown = Vec::new();
        cap(&mut shown, unsigned, |n| {
            format!("… and {n} more tags of train {train} not signed by an allowed signer")
        });
        obs.warnings.splice(0..0, shown);
        Some(obs)
    }

    fn from_trusted_names<'a>(
        train: TrainId,
        records: &[TagRecord],
        all_names: impl Iterator<Item = &'a str>,
    ) -> Option<Observed> {
        let mut taken: BTreeMap<String, u32> = BTreeMap::new();
        for n in all_names {
            if let Ok(Some(Tag::Trigger(tr) | Tag::State(tr, _) | Tag::Rerun(tr, _, _))) =
                Tag::parse_any(n)
            {
                if tr.train == train {
                    let e = taken.entry(tr.step).or_insert(0);
                    *e = (*e).max(tr.job);
                }
            }
        }
        let mut obs = Self::from_trusted_inner(train, records)?;
        obs.taken = taken;
        Some(obs)
    }

    fn from_trusted_inner(train: TrainId, records: &[TagRecord]) -> Option<Observed> {
        let mut parsed: Vec<(Tag, &TagRecord)> = Vec::new();
        let mut malformed = Vec::new();
        let own = format!("{}{train}=", crate::model::tag::PREFIX);
        for r in records {
            match Tag::parse_any(&r.name) {
                Ok(Some(t)) if t.train() == train => parsed.push((t, r)),
                Err(e) if r.name.starts_with(&own) => malformed.push(e.to_string()),
                _ => {}
            }
        }
        let root = parsed
            .iter()
            .find(|(t, _)| matches!(t, Tag::Train(_)))
            .map(|(_, r)| *r)?;
        let mut obs = Observed::opened(train, root.commit.clone(), Event::from_record(root));
        const SHOWN: usize = 20;
        let n = malformed.len();
        for m in malformed.into_iter().take(SHOWN) {
            obs.warnings.push(format!("ignored {m}"));
        }
        if n > SHOWN {
            obs.warnings.push(format!(
                "ignored {} more malformed tags of train {train}",
                n - SHOWN
            ));
        }
        // Triggers first, so states can be checked against them.
        parsed.sort_by_key(|(t, _)| match t {
            Tag::Train(_) => 0,
            Tag::Trigger(_) => 1,
            _ => 2,
        });
        let mut elsewhere = Vec::new();
        let mut orphans = Vec::new();
        for (tag, r) in parsed {
            if matches!(tag, Tag::Train(_)) {
                continue;
            }
            if r.commit != obs.commit {
                elsewhere.push(format!(
                    "ignored `{}`: it points to commit {} but train {} is on {}",
                    r.name,
                    short(&r.commit),
                    train,
                    short(&obs.commit)
                ));
                continue;
            }
            let ev = Event::from_record(r);
            match tag {
                Tag::Train(_) => {}
                Tag::Trigger(tr) => {
                    obs.attempts
                        .entry(tr.step)
                        .or_default()
                        .entry(tr.job)
                        .or_default()
                        .triggered = Some(ev);
                }
                Tag::State(..) | Tag::Rerun(..) => {
                    let (tr, run, st) = match tag {
                        Tag::Rerun(tr, k, st) => (tr, k, st),
                        Tag::State(tr, st) => (tr, 0, st),
                        _ => unreachable!("matched a state tag"),
                    };
                    let has_trigger = obs
                        .attempts
                        .get(&tr.step)
                        .and_then(|a| a.get(&tr.job))
                        .is_some_and(|a| a.triggered.is_some());
                    if !has_trigger {
                        orphans.push(format!(
                            "ignored `{}`: no trigger `{}` behind it",
                            r.name,
                            tr.tag()
                        ));
                        continue;
                    }
                    if let Some(a) = obs
                        .attempts
                        .get_mut(&tr.step)
                        .and_then(|a| a.get_mut(&tr.job))
                    {
                        if run == 0 {
                            a.states.insert(st, ev);
                        } else {
                            a.reruns.entry(run).or_default().insert(st, ev);
                        }
                    }
                }
                Tag::Step(_, step, StepVerb::Unblocked) => {
                    obs.unblocked.insert(step, ev);
                }
                Tag::Step(_, step, StepVerb::Skipped) => {
                    obs.skipped.insert(step, ev);
                }
                Tag::Step(_, step, StepVerb::Superseded) => {
                    obs.superseded.insert(step, ev);
                }
                Tag::Cancelled(_) => obs.cancelled = Some(ev),
            }
        }
        for (kind, found) in [
            ("tags on other commits", elsewhere),
            ("states without their trigger", orphans),
        ] {
            cap(&mut obs.warnings, found, |n| {
                format!("… and {n} more ignored {kind} of train {train}")
            });
        }
        let mut both = Vec::new();
        for (step, atts) in &obs.attempts {
            for (job, a) in atts {
                if a.states.contains_key(&JobState::Success)
                    && a.states.contains_key(&JobState::Failure)
                {
                    both.push(format!(
                        "`{step}` attempt {job} reported both success and failure; failure counts"
                    ));
                }
                for (k, st) in &a.reruns {
                    if st.contains_key(&JobState::Success) && st.contains_key(&JobState::Failure) {
                        obs.warnings.push(format!(
                            "`{step}` attempt {job} re-run {k} reported both success and failure; failure counts"
                        ));
                    }
                }
            }
        }
        cap(&mut obs.warnings, both, |n| {
            format!(
                "… and {n} more attempts of train {train} that reported both success and failure"
            )
        });
        Some(obs)
    }

    /// Drop everything about steps the graph does not have, with a warning.
    pub fn retain_steps(&mut self, known: impl Fn(&str) -> bool) {
        let unknown: Vec<String> = self
            .attempts
            .keys()
            .chain(self.unblocked.keys())
            .chain(self.skipped.keys())
            .chain(self.superseded.keys())
            .filter(|s| !known(s))
            .cloned()
            .collect();
        let mut dropped = 0usize;
        for s in unknown {
            if self.attempts.remove(&s).is_some()
                | self.unblocked.remove(&s).is_some()
                | self.skipped.remove(&s).is_some()
                | self.superseded.remove(&s).is_some()
            {
                dropped += 1;
                if dropped <= SHOWN_PER_KIND {
                    self.warnings.push(format!(
                        "ignored tags of step `{s}`: the train's graph has no such step"
                    ));
                }
            }
        }
        if dropped > SHOWN_PER_KIND {
            self.warnings.push(format!(
                "… and the tags of {} more steps the train's graph does not have",
                dropped - SHOWN_PER_KIND
            ));
        }
    }
}

/// How many warnings of one kind about one train are shown; the rest are counted in one
/// more line (`… and N more`), so junk tags cannot flood a tick's output.
pub const SHOWN_PER_KIND: usize = 5;

/// Add the first [`SHOWN_PER_KIND`] of `found` to `warnings`, then one line for the rest.
fn cap(warnings: &mut Vec<String>, found: Vec<String>, more: impl Fn(usize) -> String) {
    let n = found.len();
    warnings.extend(found.into_iter().take(SHOWN_PER_KIND));
    if n > SHOWN_PER_KIND {
        warnings.push(more(n - SHOWN_PER_KIND));
    }
}

/// The first 10 characters of an object id (git gives hex; anything else is cut at a
/// character boundary, never inside one: found by the `tick_path` fuzz target).
pub fn short(oid: &str) -> &str {
    let end = oid.char_indices().nth(10).map_or(oid.len(), |(i, _)| i);
    &oid[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_never_cuts_inside_a_character() {
        assert_eq!(super::short("b2da90f19ed060baa8ba"), "b2da90f19e");
        assert_eq!(super::short("abc"), "abc");
        assert_eq!(super::short(&"é".repeat(40)), "é".repeat(10));
    }

    const WRITER: &str = "Train Engineer <te@example.com>";

    /// The cancel message as `konductor cancel` writes it (and as older versions wrote it,
    /// before reasons were checked).
    fn cancel_message(reason: &str) -> String {
        format!("cancel train 1.2\n\nby: {WRITER}\nreason: {reason}\n")
    }

    #[test]
    fn a_multi_line_reason_of_an_old_tag_cannot_claim_another_identity() {
        let m = cancel_message("x\nby: Release Boss <boss@example.com>\nreason: forged");
        assert_eq!(message_field(&m, "by"), Some(WRITER));
        assert_eq!(message_field(&m, "reason"), Some("x"));
        let m = "train 1.0\n\nopened-by: Cron <c@x>\ncommit: 1\nopened-by: Boss <b@x>\n";
        assert_eq!(message_field(m, "opened-by"), Some("Cron <c@x>"));
    }

    #[test]
    fn the_summary_line_is_never_a_field() {
        assert_eq!(
            message_field("by: Boss\n\nby: Cron <c@x>\n", "by"),
            Some("Cron <c@x>")
        );
        assert_eq!(message_field("reason: x", "reason"), None);
    }

    #[test]
    fn job_url_keeps_the_last_line() {
        let m = "release=1.0=a.1 started\n\njob_url:https://a\njob_url: https://b\nby: CI <ci@x>\n";
        assert_eq!(message_field(m, "job_url"), Some("https://b"));
    }

    #[test]
    fn check_one_line_names_what_it_refuses() {
        let e = check_one_line("`--reason`", "x\nby: Boss")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`--reason` holds a line break (U+000A at character 2)"),
            "{e}"
        );
        let e = check_one_line("`--reason`", "ok\u{1b}[2K")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a control character (U+001B"), "{e}");
        let e = check_one_line("`--reason`", "a\u{202e}b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bidirectional"), "{e}");
        for ok in ["superseded by 1.1", "by: nobody, honestly", "déjà vu ✓", ""] {
            assert!(check_one_line("`--reason`", ok).is_ok(), "{ok}");
        }
    }

    proptest! {
        /// Whatever a reason holds, the writer's `by:` is what is read back; and a reason
        /// the writer accepts is read back whole.
        #[test]
        fn no_reason_changes_who_a_message_says_did_it(reason in "\\PC{0,20}(\n\\PC{0,20}){0,3}") {
            let m = cancel_message(&reason);
            prop_assert_eq!(message_field(&m, "by"), Some(WRITER));
            if check_one_line("`--reason`", &reason).is_ok() {
                prop_assert_eq!(message_field(&m, "reason"), Some(reason.trim()));
            }
        }
    }
}
