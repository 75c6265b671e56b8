//! Tests that cross the layers on purpose: values at the numeric boundaries go through
//! the whole pipeline, parse (model) → observe → plan → report (ops), so they live in
//! the top layer.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::model::plan::{plan, PlanContext};
use crate::model::sdd::Sdd;
use crate::model::tag::TrainId;
use crate::model::train::Observed;

fn boundary_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=3,
        999_999_990u64..=1_000_000_010,
        4_294_967_290u64..=4_294_967_300,
        any::<u64>(),
    ]
}

fn boundary_time() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1i64),
        Just(0i64),
        Just(crate::model::time::MAX_TIME),
        0i64..=2_000_000_000,
        any::<i64>(),
    ]
}

fn boundary_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u64..=4).prop_map(|n| format!("{n}s")),
        Just("365d".to_string()),
        Just("8760h".to_string()),
        Just("365d1s".to_string()),
        Just("9223372036854775807s".to_string()),
        Just("9223372036854775808s".to_string()),
        Just("18446744073709551616s".to_string()),
        Just("99999999999999999999d".to_string()),
        any::<u64>().prop_map(|n| format!("{n}s")),
        any::<u32>().prop_map(|n| format!("{n}d")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Tag names and SDD values at the numeric boundaries, through parse → observe → plan →
    /// format: nothing panics, every refusal says "too large"/"longer", every tag the plan
    /// would write parses back to itself, and no reported duration is negative.
    #[test]
    fn numbers_at_the_boundaries_go_through_parse_plan_and_format(
        train in boundary_number(),
        patch in boundary_number(),
        jobs in proptest::collection::vec(boundary_number(), 1..4),
        times in proptest::collection::vec(boundary_time(), 4),
        now in boundary_time(),
        timeout in boundary_duration(),
        trigger_timeout in boundary_duration(),
        retries in 0u32..=20,
    ) {
        use crate::model::tag::{Tag, MAX_JOB};
        use crate::model::train::TagRecord;
        let text = format!("a: {{timeout: {timeout}, trigger_timeout: {trigger_timeout}, retries: {retries}}}\nb: [a]\nt: {{needs: [b], virtual: true}}\n");
        let g = match Sdd::parse("t.yaml", &text) {
            Ok(g) => g,
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains("longer than the longest allowed") || e.contains("longer than zero"), "{e}");
                return Ok(());
            }
        };
        for s in g.steps() {
            prop_assert!(s.trigger_timeout <= crate::model::sdd::MAX_DURATION);
            prop_assert!(s.timeout.is_none_or(|d| d <= crate::model::sdd::MAX_DURATION));
        }
        let id = format!("{train}.{patch}");
        let Ok(tid) = id.parse::<TrainId>() else {
            prop_assert!(train > 999_999_999 || patch > 999_999_999);
            return Ok(());
        };
        let rec = |name: String, time: i64| TagRecord {
            name,
            commit: "c".repeat(40),
            tagger: Some("t <t@x>".into()),
            time: Some(time),
            message: String::new(),
            signer: None,
            signature_error: None,
        };
        let mut records = vec![rec(format!("release={id}"), times[0])];
        for (i, j) in jobs.iter().enumerate() {
            let trig = format!("release={id}=a.{j}");
            match Tag::parse_any(&trig) {
                Ok(Some(_)) => {}
                Err(e) => {
                    prop_assert!(*j == 0 || (*j > u64::from(MAX_JOB) && e.reason.contains("too large")), "{e}");
                }
                Ok(None) => unreachable!(),
            }
            records.push(rec(trig.clone(), times[(i + 1) % 4]));
            records.push(rec(format!("{trig}=started"), times[(i + 2) % 4]));
            if i % 2 == 0 {
                records.push(rec(format!("{trig}=failure"), times[(i + 3) % 4]));
            }
        }
        let obs = Observed::from_records(tid, &records).expect("the train tag is there");
        let now = crate::model::time::clamp(now);
        let p = plan(&g, "t", &obs, &PlanContext { now, conditions: BTreeMap::new(), environments: None });
        for a in &p.actions {
            if let Some(tag) = a.tag(tid) {
                let name = tag.to_string();
                prop_assert_eq!(name.parse::<Tag>().ok(), Some(tag.clone()), "{} does not parse back", name);
            }
            let _ = a.message();
        }
        let planned = crate::ops::read::Planned { obs: obs.clone(), sdd: g.clone(), plan: p };
        let report = crate::ops::status::TrainReport::new(&planned);
        for s in &report.steps {
            prop_assert!(s.duration_secs.is_none_or(|d| d >= 0), "{:?}", s.duration_secs);
            for a in &s.attempts {
                prop_assert!(a.duration_secs.is_none_or(|d| d >= 0));
            }
        }
        let _ = serde_json::to_string(&report).unwrap();
        for e in crate::ops::status::log_events(&records) {
            prop_assert!(e.at.len() == 20, "{}", e.at);
        }
    }
}
