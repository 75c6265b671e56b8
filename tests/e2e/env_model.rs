//! An independent model of the environment rules (docs/sdd.md, "Environments"), for the
//! race test and the soak. It reads the server's tags and deploy tags with plain git and
//! never calls the planner: what it says a train must end as comes from the rules, the
//! claims and the CI's decisions.

use std::collections::{BTreeMap, BTreeSet};

use crate::harness::Env;

/// `N.P` as a pair that orders as trains do.
pub fn train_id(s: &str) -> (u32, u32) {
    let (n, p) = s.trim().split_once('.').expect("N.P");
    (n.parse().unwrap(), p.parse().unwrap())
}

/// One environment of the graph: its name, its deploy step, its deploy tag.
#[derive(Clone, Copy)]
pub struct EnvSpec {
    pub env: &'static str,
    pub step: &'static str,
    pub tag: &'static str,
}

/// What the checks found; every list must be empty.
#[derive(Debug, Default)]
pub struct EnvCheck {
    /// A deploy commit whose train is older than the one before it (and is no rollback).
    pub regressions: Vec<String>,
    /// Two deploy commits of one train under one tag, or a deploy step triggered twice.
    pub double_deploys: Vec<String>,
    /// Claims whose trains go down, a deploy trigger without its train's claim, a claim
    /// made while the previous holder's deploy had not ended.
    pub claim_faults: Vec<String>,
    /// Per environment: deploy commits, claims.
    pub deploys: BTreeMap<&'static str, usize>,
    pub claims: BTreeMap<&'static str, usize>,
    /// Per environment, the trains that claimed it, in claim order.
    pub holders: BTreeMap<&'static str, Vec<(u32, u32)>>,
}

/// Every tag on the server with its tagger time.
fn tag_times(env: &Env) -> BTreeMap<String, i64> {
    env.server
        .git(&[
            "for-each-ref",
            "--format=%(refname:strip=2)|%(taggerdate:unix)",
            "refs/tags/",
        ])
        .lines()
        .filter_map(|l| {
            let (n, t) = l.rsplit_once('|')?;
            Some((n.to_string(), t.parse().unwrap_or(0)))
        })
        .collect()
}

/// The deploy history under `tag`, oldest first: (train, rollback) per commit.
pub fn deploy_history(env: &Env, tag: &str) -> Vec<((u32, u32), bool)> {
    if !env.server.tags().iter().any(|t| t == tag) {
        return Vec::new();
    }
    env.server
        .git(&[
            "log",
            "--first-parent",
            "--reverse",
            "--format=%B%x00",
            &format!("refs/tags/{tag}"),
        ])
        .split('\0')
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let field = |k: &str| {
                m.lines()
                    .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_string()))
            };
            let train = train_id(&field("train:").expect("a deploy commit names its train"));
            (train, field("rollback:").as_deref() == Some("true"))
        })
        .collect()
}

/// Check the rules on what the server holds now. `single_trigger`: the graph has no
/// retries and no trigger timeouts, so a deploy step's only trigger is job 1.
pub fn check(env: &Env, specs: &[EnvSpec], single_trigger: bool) -> EnvCheck {
    let times = tag_times(env);
    let mut out = EnvCheck::default();
    for s in specs {
        // The deploy tag's history: forward only, one commit per train.
        let hist = deploy_history(env, s.tag);
        out.deploys.insert(s.env, hist.len());
        let mut per_train: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        for (i, (t, rollback)) in hist.iter().enumerate() {
            if !rollback {
                *per_train.entry(*t).or_default() += 1;
            }
            if i > 0 && !rollback && *t < hist[i - 1].0 {
                out.regressions.push(format!(
                    "{}: deploy {} is train {t:?} after train {:?}",
                    s.tag,
                    i + 1,
                    hist[i - 1].0
                ));
            }
        }
        for (t, n) in per_train.into_iter().filter(|(_, n)| *n > 1) {
            out.double_deploys
                .push(format!("{}: {n} deploy commits of train {t:?}", s.tag));
        }
        // Triggers of the deploy step: job 1 only (the graphs here have no retries).
        for name in times.keys() {
            if let Some(rest) = name.strip_prefix("release=") {
                let parts: Vec<&str> = rest.split('=').collect();
                if parts.len() == 2 {
                    if let Some((step, job)) = parts[1].rsplit_once('.') {
                        if single_trigger && step == s.step && job != "1" {
                            out.double_deploys
                                .push(format!("a second trigger of the deploy step: {name}"));
                        }
                    }
                }
            }
        }
        // Claims, in turn order.
        let mut claims: Vec<(u32, String)> = times
            .keys()
            .filter_map(|n| {
                let k = n.strip_prefix(&format!("env={}.", s.env))?;
                Some((k.parse().ok()?, n.clone()))
            })
            .collect();
        claims.sort();
        out.claims.insert(s.env, claims.len());
        let holders: Vec<(u32, u32)> = claims
            .iter()
            .map(|(_, c)| {
                let msg = env.server.git(&["tag", "-l", "--format=%(contents)", c]);
                train_id(
                    msg.lines()
                        .find_map(|l| l.strip_prefix("train: "))
                        .expect("a claim names its train"),
                )
            })
            .collect();
        for w in holders.windows(2) {
            if w[1] <= w[0] {
                out.claim_faults
                    .push(format!("{}: claimed by {:?} after {:?}", s.env, w[1], w[0]));
            }
        }
        // One at a time: the previous holder's deploy had ended when the next claim came.
        // Ended: its first success, else its last failure or timeout (of any job).
        for (i, w) in holders.windows(2).enumerate() {
            let (n, p) = w[0];
            let prefix = format!("release={n}.{p}={}.", s.step);
            let outcome = |o: &str| -> Vec<i64> {
                times
                    .iter()
                    .filter(|(name, _)| {
                        name.strip_prefix(&prefix).is_some_and(|rest| {
                            rest.split_once('=').is_some_and(|(job, st)| {
                                job.bytes().all(|b| b.is_ascii_digit()) && st == o
                            })
                        })
                    })
                    .map(|(_, t)| *t)
                    .collect()
            };
            let ended = outcome("success").into_iter().min().or_else(|| {
                outcome("failure")
                    .into_iter()
                    .chain(outcome("timeout"))
                    .max()
            });
            let claimed = times[&claims[i + 1].1];
            match ended {
                Some(e) if e <= claimed => {}
                _ => out.claim_faults.push(format!(
                    "{}: {} made while {prefix}* had not ended",
                    s.env,
                    claims[i + 1].1
                )),
            }
        }
        // Every deploy trigger has its train's claim.
        for name in times.keys() {
            let Some(rest) = name.strip_prefix("release=") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('=').collect();
            if parts.len() == 2
                && parts[1]
                    .rsplit_once('.')
                    .is_some_and(|(step, _)| step == s.step)
                && !holders.contains(&train_id(parts[0]))
            {
                out.claim_faults.push(format!("{name} without a claim"));
            }
        }
        out.holders.insert(s.env, holders);
    }
    out
}

/// What a train must end as, by the rules, from the CI's decisions (`decided`: trigger
/// tag → success) and the claims: the steps in order; a deploy step never triggered is
/// superseded exactly when a newer train claimed its environment; otherwise the train
/// is not finished. `steps` are the graph's steps in order, with their environment.
pub fn expected_state(
    train: &str,
    steps: &[(&str, Option<&EnvSpec>)],
    triggered: &BTreeSet<String>,
    decided: &BTreeMap<String, bool>,
    holders: &BTreeMap<&'static str, Vec<(u32, u32)>>,
) -> &'static str {
    let me = train_id(train);
    for (step, spec) in steps {
        let trig = format!("release={train}={step}.1");
        if !triggered.contains(&trig) {
            if let Some(s) = spec {
                if holders[s.env].iter().any(|h| *h > me) {
                    return "superseded";
                }
            }
            return "unfinished";
        }
        match decided.get(&trig) {
            Some(true) => {}
            Some(false) => return "failed",
            None => return "unfinished",
        }
    }
    "succeeded"
}
