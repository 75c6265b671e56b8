//! Fuzz the SDD parser (`Sdd::parse`) and every graph query on what it accepts.
//!
//! Run with `-max_len=4096`: serde_yaml is slow on some pathological inputs, and real SDD
//! files are a few KiB at most.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use konductor_core::sdd::Sdd;
use konductor_core::simulate::{simulate, SimOptions};
use libfuzzer_sys::fuzz_target;

/// Simulation runs the planner once per tick; keep it to graphs of a realistic size so one
/// input stays well under the timeout.
const MAX_SIMULATED_STEPS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let sdd = match Sdd::parse("f.yaml", &text) {
        Ok(sdd) => sdd,
        Err(e) => {
            assert!(!e.issues.is_empty(), "an SddError with no issue");
            let _ = e.to_string();
            return;
        }
    };
    let steps = sdd.steps();

    // topo_order: a permutation of the steps, each after everything it needs.
    let topo = sdd.topo_order();
    assert_eq!(topo.len(), steps.len(), "topo_order lost steps");
    let mut pos = BTreeMap::new();
    for (i, s) in topo.iter().enumerate() {
        assert!(pos.insert(s.name.as_str(), i).is_none(), "topo_order repeats {}", s.name);
    }
    for s in steps {
        for d in &s.needs {
            assert!(pos[d.as_str()] < pos[s.name.as_str()], "{} before its dependency {d}", s.name);
        }
        let _ = sdd.dependents(&s.name);
    }
    let _ = sdd.leaves();

    for target in sdd.targets() {
        let closure = sdd.closure(target);
        assert_eq!(
            closure.last().map(|s| s.name.as_str()),
            Some(target),
            "closure of {target} does not end with it"
        );
        let names: BTreeSet<&str> = closure.iter().map(|s| s.name.as_str()).collect();
        for s in &closure {
            for d in &s.needs {
                assert!(names.contains(d.as_str()), "closure of {target} misses {d}");
            }
        }
        let path = sdd.critical_path(target);
        assert_eq!(path.last().map(String::as_str), Some(target));
        let depth = sdd.depth(target);
        assert!(depth <= path.len());
        assert!(sdd.check_target(target).is_ok());
    }
    let _ = sdd.check_target("no-such-step");

    if let Ok(target) = sdd.default_target() {
        if steps.len() <= MAX_SIMULATED_STEPS {
            let unblock: BTreeSet<String> =
                steps.iter().filter(|s| s.manual).map(|s| s.name.clone()).collect();
            let opts = SimOptions {
                target: target.to_string(),
                fail: BTreeSet::new(),
                unblock,
            };
            let sim = simulate(&sdd, &opts).expect("simulate refused valid options");
            assert!(sim.ticks.len() <= steps.len() * 30 + 11, "simulation did not stop");
            // Again with the first job of the closure failing on every attempt.
            if let Some(first) = sdd.closure(target).iter().find(|s| sdd.runs(&s.name, target)) {
                let opts = SimOptions {
                    fail: BTreeSet::from([first.name.clone()]),
                    ..opts
                };
                let sim = simulate(&sdd, &opts).expect("simulate refused a valid --fail");
                assert!(sim.ticks.len() <= steps.len() * 30 + 11, "simulation did not stop");
            }
        }
    }
});
