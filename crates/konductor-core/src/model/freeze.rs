//! Freezes and pins of an environment: the scheduled freeze windows of a deploy step
//! (`freeze: ["Fri 16:00 - Mon 08:00 Europe/Berlin"]` in `sdd.yaml`) and the control
//! records people write with `konductor freeze`, `unfreeze`, `rollback` and `unpin`
//! (`env=<environment>=<k>`, see `docs/tag-protocol.md`, "Environments: freezes, pins
//! and rollbacks"). Pure: the clock is a parameter.
//!
//! Time zones come from jiff with the IANA database bundled into the binary, so every
//! reader decides a window the same way whatever its host has installed
//! (`docs/architecture.md`, "Time zones").

use std::fmt;

use serde::Serialize;

use crate::model::env::CLAIM_PREFIX;
use crate::model::tag::TrainId;
use crate::model::time::{clamp, rfc3339};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A scheduled freeze window of a deploy step, in wall-clock time of a zone: weekly
/// (`Fri 16:00 - Mon 08:00 Europe/Berlin`) or daily (`22:00 - 06:00 UTC`). The start is
/// inside the window, the end is not. A window whose end comes before its start (in the
/// week, or the day) runs over the week's (day's) turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The text as written.
    pub text: String,
    /// Minute of the week (Monday 00:00 = 0) or of the day when `daily`.
    start: u32,
    end: u32,
    daily: bool,
    /// The IANA zone name (checked to exist when parsed).
    zone: String,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_point(words: &[&str]) -> Result<(Option<u32>, u32), String> {
    let (day, hm) = match words {
        [hm] => (None, *hm),
        [d, hm] => {
            let i = DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d))
                .ok_or_else(|| {
                    format!(
                        "`{}` is not a day; write Mon, Tue, Wed, Thu, Fri, Sat or Sun",
                        d.escape_debug()
                    )
                })?;
            (Some(i as u32), *hm)
        }
        _ => return Err("each side is `[Day] HH:MM`".into()),
    };
    let bad = || {
        format!(
            "`{}` is not a time; write 24-hour `HH:MM`, like `16:00`",
            hm.escape_debug()
        )
    };
    let (h, m) = hm.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((day, h * 60 + m))
}

impl Window {
    /// Parse `[Day] HH:MM - [Day] HH:MM Zone`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Window, String> {
        let (left, right) = text.split_once(" - ").ok_or_else(|| {
            "a window is `Day HH:MM - Day HH:MM Zone`, with ` - ` between start and end".to_string()
        })?;
        let left: Vec<&str> = left.split_whitespace().collect();
        let mut right: Vec<&str> = right.split_whitespace().collect();
        let zone = right
            .pop()
            .filter(|z| z.contains('/') || z.eq_ignore_ascii_case("UTC"))
            .ok_or_else(|| {
                "the window names no time zone; end it with an IANA zone like `Europe/Berlin` or `UTC`"
                    .to_string()
            })?;
        jiff::tz::db().get(zone).map_err(|_| {
            format!(
                "`{}` is not a time zone of the IANA database; write one like `Europe/Berlin` or `UTC`",
                zone.escape_debug()
            )
        })?;
        let (sd, st) = parse_point(&left)?;
        let (ed, et) = parse_point(&right)?;
        let (start, end, daily) = match (sd, ed) {
            (Some(a), Some(b)) => (a * 1440 + st, b * 1440 + et, false),
            (None, None) => (st, et, true),
            _ => return Err("give a day on both sides or on neither (a daily window)".into()),
        };
        if start == end {
            return Err("the window starts where it ends".into());
        }
        Ok(Window {
            text: text.to_string(),
            start,
            end,
            daily,
            zone: zone.to_string(),
        })
    }

    fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::db()
            .get(&self.zone)
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// When the window that holds `now` ends (seconds), or `None` when `now` is outside.
    pub fn end_if_inside(&self, now: i64) -> Option<i64> {
        let tz = self.tz();
        let ts = jiff::Timestamp::from_second(clamp(now)).ok()?;
        let z = ts.to_zoned(tz.clone());
        let day = z.weekday().to_monday_zero_offset() as u32;
        let minute = z.hour() as u32 * 60 + z.minute() as u32;
        let m = if self.daily {
            minute
        } else {
            day * 1440 + minute
        };
        let inside = if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        };
        if !inside {
            return None;
        }
        // The next wall-clock end after now, on the end's day (or any day when daily).
        let (end_day, end_min) = if self.daily {
            (None, self.end)
        } else {
            (Some(self.end / 1440), self.end % 1440)
        };
        let mut date = z.date();
        for _ in 0..=8 {
            let fits = end_day.is_none_or(|d| date.weekday().to_monday_zero_offset() as u32 == d);
            if fits {
                let at = date
                    .at((end_min / 60) as i8, (end_min % 60) as i8, 0, 0)
                    .to_zoned(tz.clone())
                    .ok()?
                    .timestamp()
                    .as_second();
                if at > now {
                    return Some(at);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// Parse `--until`: an RFC 3339 time (`2026-12-24T08:00:00Z`, `2026-12-24T09:00:00+01:00`)
/// or a duration from `now` (`90m`, `2h`, `3d`). The caller checks it is in the future.
pub fn parse_until(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(ts) = s.trim().parse::<jiff::Timestamp>() {
        return Ok(clamp(ts.as_second()));
    }
    match crate::model::sdd::parse_duration(s.trim()) {
        Ok(d) => Ok(clamp(
            now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )),
        Err(_) => Err(format!(
            "`--until` `{}` is neither a time nor a duration; write `2026-12-24T08:00:00Z` or `2h`",
            s.escape_debug()
        )),
    }
}

/// The first window of `windows` that holds `now`, with the latest end among those that
/// do (overlapping windows keep the environment frozen until the last ends).
pub fn active_window(windows: &[Window], now: i64) -> Option<(&Window, i64)> {
    windows
        .iter()
        .filter_map(|w| w.end_if_inside(now).map(|e| (w, e)))
        .max_by_key(|(_, e)| *e)
}

/// A control record's name: `env=<environment>=<k>`, record `k` (from 1) of the
/// environment. `=` cannot be in an environment name and a claim (`env=<environment>.<k>`)
/// has no second `=`, so neither is read as the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordName {
    /// The environment.
    pub env: String,
    /// The record's number, from 1.
    pub seq: u32,
}

impl fmt::Display for RecordName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CLAIM_PREFIX}{}={}", self.env, self.seq)
    }
}

impl RecordName {
    /// Parse a record name (with or without `refs/tags/`); `None` for anything else.
    pub fn parse(name: &str) -> Option<RecordName> {
        let name = name.strip_prefix("refs/tags/").unwrap_or(name);
        let (env, k) = name.strip_prefix(CLAIM_PREFIX)?.split_once('=')?;
        Some(RecordName {
            env: env.to_string(),
            seq: crate::model::env::env_number(env, k)?,
        })
    }

    /// The glob of every record of `env`.
    pub fn glob(env: &str) -> String {
        format!("{CLAIM_PREFIX}{env}=*")
    }
}

/// What a control record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `konductor freeze`.
    Freeze,
    /// `konductor unfreeze`.
    Unfreeze,
    /// `konductor rollback`: the environment is pinned to a train.
    Pin,
    /// `konductor unpin`.
    Unpin,
}

impl Action {
    /// The name in the `action:` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Freeze => "freeze",
            Action::Unfreeze => "unfreeze",
            Action::Pin => "pin",
            Action::Unpin => "unpin",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        [Action::Freeze, Action::Unfreeze, Action::Pin, Action::Unpin]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One control record as a reader found it (trusted: signed when signatures are
/// required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Its number.
    pub seq: u32,
    /// What it does.
    pub action: Action,
    /// Who wrote it (the tagger, or the verified signer).
    pub by: String,
    /// When (tagger time, seconds).
    pub at: i64,
    /// Why.
    pub reason: String,
    /// A freeze's end (seconds), if it has one.
    pub until: Option<i64>,
    /// The train a pin holds the environment at.
    pub train: Option<TrainId>,
    /// The deploy commit a rollback published (pins).
    pub commit: Option<String>,
}

/// The message of a control record: a summary, then the fields readers take.
pub fn record_message(
    env: &str,
    action: Action,
    reason: &str,
    until: Option<i64>,
    train: Option<TrainId>,
    commit: Option<&str>,
    by: &str,
) -> String {
    let mut m = format!(
        "{} `{env}`\n\naction: {}\n",
        action.as_str(),
        action.as_str()
    );
    if let Some(t) = train {
        m.push_str(&format!("train: {t}\n"));
    }
    if let Some(c) = commit {
        m.push_str(&format!("commit: {c}\n"));
    }
    if let Some(u) = until {
        m.push_str(&format!("until: {}\n", rfc3339(u)));
    }
    m.push_str(&format!("by: {by}\nreason: {reason}\n"));
    m
}

/// Read a record's fields from its message; `None` when it is not one.
pub fn parse_record(seq: u32, message: &str, by: String, at: i64) -> Option<Control> {
    let field = |k: &str| crate::model::train::message_field(message, k);
    let action = Action::parse(field("action")?)?;
    let until = match field("until") {
        Some(u) => Some(crate::model::time::parse_rfc3339(u)?),
        None => None,
    };
    let train = match field("train") {
        Some(t) => Some(t.parse::<TrainId>().ok()?),
        None => None,
    };
    if action == Action::Pin && train.is_none() {
        return None;
    }
    Some(Control {
        seq,
        action,
        by,
        at,
        reason: field("reason").unwrap_or_default().to_string(),
        until,
        train,
        commit: field("commit").map(str::to_string),
    })
}

/// Where the records leave an environment: frozen by hand and pinned, each the record
/// that did it (the last freeze not lifted since, the last pin not lifted since).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Controls {
    /// The freeze in force by hand (its `until` may have passed: see [`Controls::freeze_at`]).
    pub frozen: Option<Control>,
    /// The pin in force.
    pub pinned: Option<Control>,
    /// The highest record number anyone wrote (trusted or not): the next is one more.
    pub last_seq: u32,
}

impl Controls {
    /// Fold the records, ordered by number, as every reader does. `seqs` are the numbers
    /// of every record name, trusted or not.
    pub fn fold(mut records: Vec<Control>, seqs: impl IntoIterator<Item = u32>) -> Controls {
        records.sort_by_key(|r| r.seq);
        let mut c = Controls {
            last_seq: seqs.into_iter().max().unwrap_or(0),
            ..Controls::default()
        };
        for r in records {
            c.last_seq = c.last_seq.max(r.seq);
            match r.action {
                Action::Freeze => c.frozen = Some(r),
                Action::Unfreeze => c.frozen = None,
                Action::Pin => c.pinned = Some(r),
                Action::Unpin => c.pinned = None,
            }
        }
        c
    }

    /// The hand freeze in force at `now` (one whose `until` passed is over).
    pub fn freeze_at(&self, now: i64) -> Option<&Control> {
        self.frozen
            .as_ref()
            .filter(|f| f.until.is_none_or(|u| now < u))
    }
}

/// Why a deploy to `env` cannot be triggered at `now`, and until when (seconds, when
/// known): pinned by a rollback, frozen by hand, or inside a scheduled window. `None`:
/// the environment is open.
pub fn hold(
    env: &str,
    c: &Controls,
    windows: &[Window],
    now: i64,
) -> Option<(String, Option<i64>)> {
    if let Some(p) = &c.pinned {
        let t = p.train.map(|t| t.to_string()).unwrap_or_default();
        return Some((
            format!(
                "pinned: `{env}` was rolled back to {t} by {}: {}; `konductor unpin --env {env}` lets deploys go",
                p.by, p.reason
            ),
            None,
        ));
    }
    let hand = c.freeze_at(now).map(|f| {
        let end = f
            .until
            .map(|u| format!(" until {}", rfc3339(u)))
            .unwrap_or_default();
        (
            format!("frozen: `{env}` frozen by {}{end}: {}", f.by, f.reason),
            f.until,
        )
    });
    let window = active_window(windows, now).map(|(w, e)| {
        (
            format!(
                "frozen: `{env}` is in its freeze window `{w}` until {}",
                rfc3339(e)
            ),
            Some(e),
        )
    });
    match (hand, window) {
        // Both: the one that ends last says why (a freeze without end ends last).
        (Some(h), Some(w)) => Some(if h.1.is_none_or(|e| w.1.is_some_and(|we| e >= we)) {
            h
        } else {
            w
        }),
        (h, w) => h.or(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse_rfc3339;
    use proptest::prelude::*;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).expect("time")
    }

    #[test]
    fn weekly_window_in_berlin_holds_the_weekend_only() {
        let w = Window::parse("Fri 16:00 - Mon 08:00 Europe/Berlin").expect("window");
        // 2026-12-04 is a Friday; Berlin is UTC+1 in winter.
        assert_eq!(w.end_if_inside(t("2026-12-04T14:59:59Z")), None);
        assert_eq!(
            w.end_if_inside(t("2026-12-04T15:00:00Z")),
            Some(t("2026-12-07T07:00:00Z"))
        );
        assert_eq!(
            w.end_if_inside(t("2026-12-06T12:00:00Z")),
            Some(t("2026-12-07T07:00:00Z"))
        );
        assert_eq!(w.end_if_inside(t("2026-12-07T07:00:00Z")), None);
        assert_eq!(w.end_if_inside(t("2026-12-02T12:00:00Z")), None);
    }

    #[test]
    fn window_across_a_dst_change_ends_at_wall_clock_time() {
        // Berlin springs forward on Sunday 2026-03-29 (02:00 CET → 03:00 CEST): the window
        // starts at 16:00 CET (15:00 UTC) and ends at 08:00 CEST (06:00 UTC).
        let w = Window::parse("Fri 16:00 - Mon 08:00 Europe/Berlin").expect("window");
        assert_eq!(
            w.end_if_inside(t("2026-03-27T15:00:00Z")),
            Some(t("2026-03-30T06:00:00Z"))
        );
        assert_eq!(w.end_if_inside(t("2026-03-30T06:00:00Z")), None);
        assert!(w.end_if_inside(t("2026-03-30T05:59:59Z")).is_some());
        // An end inside the skipped hour is the first instant after the gap.
        let gap = Window::parse("Sat 12:00 - Sun 02:30 Europe/Berlin").expect("window");
        assert_eq!(
            gap.end_if_inside(t("2026-03-28T12:00:00Z")),
            Some(t("2026-03-29T01:30:00Z"))
        );
        // Daily windows, in fall (Berlin falls back on 2026-10-25 03:00 CEST → 02:00 CET).
        let night = Window::parse("22:00 - 06:00 Europe/Berlin").expect("window");
        assert_eq!(
            night.end_if_inside(t("2026-10-24T21:00:00Z")),
            Some(t("2026-10-25T05:00:00Z"))
        );
        assert_eq!(night.end_if_inside(t("2026-10-25T12:00:00Z")), None);
    }

    #[test]
    fn malformed_windows_say_what_is_wrong() {
        for (bad, why) in [
            ("Fri 16:00 Mon 08:00 Europe/Berlin", "` - `"),
            ("Fri 16:00 - Mon 08:00", "no time zone"),
            ("Fri 16:00 - Mon 08:00 Mars/Olympus", "not a time zone"),
            ("Fry 16:00 - Mon 08:00 UTC", "not a day"),
            ("Fri 25:00 - Mon 08:00 UTC", "not a time"),
            ("Fri 4pm - Mon 08:00 UTC", "not a time"),
            ("Fri 16:00 - 08:00 UTC", "both sides"),
            ("Fri 16:00 - Fri 16:00 UTC", "starts where it ends"),
        ] {
            let e = Window::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn freeze_on_a_step_without_environment_is_refused() {
        let e =
            crate::model::sdd::Sdd::parse("t.yaml", "build: {freeze: [\"22:00 - 06:00 UTC\"]}\n")
                .expect_err("freeze without environment")
                .to_string();
        assert!(
            e.contains("step `build` has `freeze` windows but no `environment`"),
            "{e}"
        );
        let e = crate::model::sdd::Sdd::parse(
            "t.yaml",
            "d: {environment: staging, freeze: [\"Fri 16:00 - Mon 08:00\"]}\n",
        )
        .expect_err("window without zone")
        .to_string();
        assert!(e.contains("malformed freeze window `Fri 16:00 - Mon 08:00` of step `d`: the window names no time zone"), "{e}");
        let ok = crate::model::sdd::Sdd::parse(
            "t.yaml",
            "d: {environment: staging, freeze: \"22:00 - 06:00 UTC\"}\n",
        )
        .expect("one window as a string");
        assert_eq!(ok.step("d").map(|s| s.freeze.len()), Some(1));
    }

    #[test]
    fn record_names_are_not_claims() {
        let r = RecordName {
            env: "staging".into(),
            seq: 3,
        };
        assert_eq!(r.to_string(), "env=staging=3");
        assert_eq!(RecordName::parse("refs/tags/env=staging=3"), Some(r));
        assert_eq!(crate::model::env::Claim::parse("env=staging=3"), None);
        for junk in [
            "env=staging.3",
            "env=staging=03",
            "env=staging=",
            "env==1",
            "env=a=b=1",
        ] {
            assert_eq!(RecordName::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn records_fold_in_number_order() {
        let rec = |seq, action, until| Control {
            seq,
            action,
            by: "a".into(),
            at: 0,
            reason: format!("r{seq}"),
            until,
            train: (action == Action::Pin).then(|| "41.0".parse().expect("train")),
            commit: None,
        };
        let c = Controls::fold(
            vec![
                rec(3, Action::Unfreeze, None),
                rec(1, Action::Freeze, None),
                rec(4, Action::Freeze, Some(100)),
                rec(2, Action::Pin, None),
            ],
            [7],
        );
        assert_eq!(c.frozen.as_ref().map(|f| f.seq), Some(4));
        assert_eq!(c.pinned.as_ref().map(|f| f.seq), Some(2));
        assert_eq!(c.last_seq, 7);
        assert!(c.freeze_at(99).is_some());
        assert!(c.freeze_at(100).is_none());
        let msg = record_message(
            "staging",
            Action::Freeze,
            "release week",
            Some(100),
            None,
            None,
            "a <a@x>",
        );
        let back = parse_record(4, &msg, "a".into(), 0).expect("record");
        assert_eq!(
            (back.action, back.until, back.reason.as_str()),
            (Action::Freeze, Some(100), "release week")
        );
    }

    proptest! {
        /// A window's end is always after now and outside the window; one minute before
        /// it is still inside.
        #[test]
        fn a_window_ends_after_now_and_outside(now in 0i64..4_102_444_800, sd in 0u32..7, sh in 0u32..24, ed in 0u32..7, eh in 0u32..24,
            zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])) {
            let text = format!("{} {sh:02}:00 - {} {eh:02}:30 {zone}", DAYS[sd as usize], DAYS[ed as usize]);
            let w = Window::parse(&text).expect("window");
            if let Some(end) = w.end_if_inside(now) {
                prop_assert!(end > now);
                prop_assert!(end - now <= 8 * 86_400);
                if zone == "UTC" {
                    prop_assert_eq!(w.end_if_inside(end), None);
                }
            }
        }
    }
}
