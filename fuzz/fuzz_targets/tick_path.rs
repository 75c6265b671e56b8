//! Fuzz the whole read path of a tick over a synthetic remote listing: tag names (and
//! their commits, tagger times and messages) → trains → `Observed` → plan → the tags the
//! tick would write → status report and log. Everything a hostile tag can reach without
//! git itself.
//!
//! Input: text, one tag per line, `<name> [<commit char> [<tagger time> [message words…]]]`;
//! a first line that is a number is the clock (`KONDUCTOR_NOW`).
//!
//! Invariants checked (beyond "never panics", overflow included):
//! - every train tag in the listing yields an `Observed` train;
//! - every tag the plan would write parses back to itself and belongs to the train;
//! - warnings stay bounded however many junk tags there are (kinds are capped per train);
//! - no duration in the report is negative, and every time formats as RFC 3339.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use konductor_core::ops::Planned;
use konductor_core::plan::{plan, PlanContext};
use konductor_core::report::{log_events, TrainReport};
use konductor_core::sdd::Sdd;
use konductor_core::tag::Tag;
use konductor_core::train::{Observed, TagRecord};
use libfuzzer_sys::fuzz_target;

const SDD: &str = "\
a: {timeout: 365d, trigger_timeout: 1s, retries: 2}
b: [a]
gate: {needs: [b], manual: true, approvers: [te@example.com]}
c: {needs: [gate], if_changed: [\"k8s/**\"], timeout: 30m}
done: {needs: [c], virtual: true}
";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines().peekable();
    let now = match lines.peek().and_then(|l| l.trim().parse::<i64>().ok()) {
        Some(n) => {
            lines.next();
            n
        }
        None => 1_800_000_000,
    };
    let now = konductor_core::time::clamp(now);
    let records: Vec<TagRecord> = lines
        .take(512)
        .map(|l| {
            let mut w = l.split(' ');
            let name = w.next().unwrap_or("").to_string();
            let commit = w.next().and_then(|c| c.chars().next()).unwrap_or('c');
            let time = w.next().and_then(|t| t.parse::<i64>().ok());
            TagRecord {
                name,
                commit: commit.to_string().repeat(40),
                tagger: time.map(|_| "Fuzz <f@example.com>".to_string()),
                time,
                message: w.collect::<Vec<_>>().join("\n"),
                signer: None,
                signature_error: None,
            }
        })
        .collect();
    let sdd = Sdd::parse("sdd.yaml", SDD).expect("the fixed graph is valid");
    let trains: BTreeSet<_> = records
        .iter()
        .filter_map(|r| match Tag::parse_any(&r.name) {
            Ok(Some(Tag::Train(t))) => Some(t),
            _ => None,
        })
        .collect();
    for &t in trains.iter().rev().take(8) {
        let mut obs = Observed::from_records(t, &records).expect("its train tag is listed");
        obs.retain_steps(|s| sdd.step(s).is_some());
        for changed in [None, Some(true), Some(false)] {
            let conditions: BTreeMap<String, (bool, String)> = changed
                .map(|c| ("c".to_string(), (c, "fuzzed".to_string())))
                .into_iter()
                .collect();
            let p = plan(&sdd, "done", &obs, &PlanContext { now, conditions });
            for a in &p.actions {
                if let Some(tag) = a.tag(t) {
                    let name = tag.to_string();
                    assert_eq!(name.parse::<Tag>().as_ref(), Ok(&tag), "{name}");
                    assert_eq!(tag.train(), t);
                }
                let _ = a.message();
            }
            assert!(p.warnings.len() <= 64, "{} warnings", p.warnings.len());
            let planned = Planned {
                obs: obs.clone(),
                sdd: sdd.clone(),
                plan: p,
            };
            let report = TrainReport::new(&planned);
            for s in &report.steps {
                assert!(s.duration_secs.is_none_or(|d| d >= 0));
                for a in &s.attempts {
                    assert!(a.duration_secs.is_none_or(|d| d >= 0));
                }
            }
            assert_eq!(report.opened_at.len(), 20, "{}", report.opened_at);
        }
    }
    for e in log_events(&records) {
        assert_eq!(e.at.len(), 20, "{}", e.at);
    }
});
