//! Fuzz the tag grammar: `Tag::parse_any` and `str::parse::<Tag>` on arbitrary text.
//!
//! Invariants checked (beyond "never panics"):
//! - `parse_any` and `parse` agree on whether a `release=` tag is valid;
//! - a parsed tag formats back to a string that re-parses to the same value;
//! - the grammar is canonical: the formatted tag is the input itself (minus `refs/tags/`),
//!   so no two tag names ever mean the same tag.
#![no_main]

use konductor_core::tag::{Tag, PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    check(&s);
    check(&format!("{PREFIX}{s}"));
});

fn check(s: &str) {
    let any = Tag::parse_any(s);
    let parsed = s.parse::<Tag>();
    let bare = s.strip_prefix("refs/tags/").unwrap_or(s);
    match &any {
        Ok(None) => assert!(
            !bare.starts_with(PREFIX),
            "parse_any ignored a `release=` tag: {s:?}"
        ),
        Ok(Some(t)) => assert_eq!(parsed.as_ref().ok(), Some(t), "parse_any and parse disagree on {s:?}"),
        Err(_) => assert!(parsed.is_err(), "parse_any rejected what parse accepted: {s:?}"),
    }
    if !bare.starts_with(PREFIX) {
        assert!(parsed.is_err(), "parse accepted a tag without `release=`: {s:?}");
    }
    if let Ok(tag) = parsed {
        let shown = tag.to_string();
        let again: Tag = shown
            .parse()
            .unwrap_or_else(|e| panic!("{s:?} parsed to {tag:?}, formatted as {shown:?}, which does not re-parse: {e}"));
        assert_eq!(again, tag, "round trip changed the tag ({s:?} → {shown:?})");
        assert_eq!(shown, bare, "non-canonical spelling accepted: {s:?} means {shown:?}");
        assert_eq!(Tag::parse_any(&tag.refname()), Ok(Some(tag.clone())));
        let _ = tag.train();
    }
}
