//! Time formatting without a date library: RFC 3339 in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// The latest time Konductor works with: 9999-12-31T23:59:59Z, in seconds since the epoch.
/// Tagger times (anyone can write any) and the clock are clamped to `0..=MAX_TIME`, so a
/// difference of two times, or a time plus a duration, can never overflow.
pub const MAX_TIME: i64 = 253_402_300_799;

/// A time as Konductor uses it: before the epoch counts as 0 (unknown), after
/// [`MAX_TIME`] as `MAX_TIME`.
pub fn clamp(secs: i64) -> i64 {
    secs.clamp(0, MAX_TIME)
}

/// Seconds since the epoch, now. `KONDUCTOR_NOW` (seconds) overrides it for tests and demos.
/// Clamped like every time (see [`clamp`]).
pub fn now() -> i64 {
    if let Some(n) = std::env::var("KONDUCTOR_NOW")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return clamp(n);
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| clamp(i64::try_from(d.as_secs()).unwrap_or(MAX_TIME)))
        .unwrap_or(0)
}

/// Nanoseconds since the epoch (for unique names, not for time keeping).
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `2026-11-22T14:18:35Z`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A compact age: `45s`, `12m`, `3h`, `5d`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Parse the output of [`rfc3339`] back to seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_at_the_extremes_are_clamped_and_still_format() {
        assert_eq!(super::clamp(i64::MIN), 0);
        assert_eq!(super::clamp(-1), 0);
        assert_eq!(super::clamp(i64::MAX), super::MAX_TIME);
        assert_eq!(super::rfc3339(super::MAX_TIME), "9999-12-31T23:59:59Z");
        assert_eq!(
            super::parse_rfc3339("9999-12-31T23:59:59Z"),
            Some(super::MAX_TIME)
        );
        for t in [i64::MIN, -1, 0, i64::MAX] {
            let _ = super::rfc3339(t);
            let _ = super::age(t);
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_357_115), "2026-11-22T14:18:35Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        for t in [0, 951_782_400, 1_795_357_115, 4_102_444_799] {
            assert_eq!(super::parse_rfc3339(&super::rfc3339(t)), Some(t));
        }
    }
}
