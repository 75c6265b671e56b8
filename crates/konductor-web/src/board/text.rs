//! Small text helpers of the board: escaping, URLs, times, durations, truncation.

use konductor_core::time::parse_rfc3339;
use maud::Render;

/// A string from tags (step names, info strings, URLs, people), HTML-escaped when
/// rendered: the five characters that matter in text and in double- or single-quoted
/// attributes, and NUL.
///
/// maud escapes every splice already; this escapes `'` too (maud leaves it, since its
/// own attributes are double-quoted) and replaces NUL, as the board always has.
pub(super) struct E<'a>(pub(super) &'a str);

impl Render for E<'_> {
    fn render_to(&self, buf: &mut String) {
        let s = self.0;
        let mut last = 0;
        for (i, c) in s.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                '\0' => "\u{FFFD}",
                _ => continue,
            };
            buf.push_str(&s[last..i]);
            buf.push_str(rep);
            last = i + c.len_utf8();
        }
        buf.push_str(&s[last..]);
    }
}

/// The URL if it may become a link: `http://` or `https://`, nothing odd inside.
pub(super) fn safe_url(u: &str) -> Option<&str> {
    let u = u.trim();
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && u.len() > lower.find("//").map_or(0, |p| p + 2)
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(u)
}

/// `""` for one, `"s"` otherwise.
pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The first ten characters of a commit id.
pub(super) fn short_sha(sha: &str) -> &str {
    match sha.char_indices().nth(10) {
        Some((i, _)) => &sha[..i],
        None => sha,
    }
}

/// `2026-11-22T14:18:35Z` → `2026-11-22 14:18:35`.
pub(super) fn show_time(rfc: &str) -> String {
    if parse_rfc3339(rfc).is_some() {
        rfc.replacen('T', " ", 1).trim_end_matches('Z').to_string()
    } else {
        rfc.to_string()
    }
}

/// `45s`, `4m 12s`, `1h 03m`, `2d 03h`.
pub(super) fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// At most `max` characters, ending in `…` when cut.
pub(super) fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Round a coordinate for output.
pub(super) fn r(v: f64) -> i64 {
    v.round() as i64
}
