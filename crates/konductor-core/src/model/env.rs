//! Environments: names, deploy tags, the claim tags that serialise deploys, and the facts
//! about other trains the planner needs to decide a deploy step (see `docs/sdd.md`,
//! "Environments", and `docs/tag-protocol.md`, "Environments: one deploy at a time").
//!
//! A step with `environment: E` is E's deploy step. A train *claims* E before it triggers
//! that step, by creating the tag `env=E.<k>` (create-only), where `k` is one more than
//! the highest claim number of E anyone wrote. Exactly one push creates a given name, so
//! two ticks that decide different trains for the same turn cannot both win: the claim is
//! the lock. The rules the planner applies from these facts are in
//! [`crate::model::plan`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::tag::TrainId;

/// Every claim tag starts with this (after `refs/tags/`). It is outside `release=`, so no
/// CI tag filter for a step matches it and train discovery never reads it.
pub const CLAIM_PREFIX: &str = "env=";

/// Longest environment name accepted.
pub const MAX_ENV_LEN: usize = 32;

/// Largest claim number the grammar reads (the same room as job ids).
pub const MAX_CLAIM: u32 = 999_999_999;

/// Why `name` cannot be an environment name, if it cannot. Environment names live in tag
/// names (`env=staging.4`), so they take the step names' alphabet and a shorter length: 1 to 32 ASCII letters, digits, `-` or `_`, starting with a letter or
/// digit.
pub fn env_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_ENV_LEN {
        return Some(format!("it is longer than {MAX_ENV_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Some(format!(
            "it contains {}; only letters, digits, `-` and `_` can live in a tag",
            match c {
                ' ' => "a space".to_string(),
                c if c.is_control() => format!("control character {c:?}"),
                c => format!("`{c}`"),
            }
        ));
    }
    if name.starts_with(['-', '_']) {
        return Some("it must start with a letter or a digit".into());
    }
    None
}

/// Why `tag` cannot be a deploy tag, if it cannot: empty, under `release=` or `env=`
/// (Konductor's), starting with `-` (git refuses such tag names, and one could pass for an
/// option), or not a valid ref name (libgit2's `git_reference_name_is_valid`, a pure
/// function: no repository is opened).
pub fn deploy_tag_problem(tag: &str) -> Option<&'static str> {
    if tag.is_empty() {
        Some("it is empty")
    } else if tag.starts_with(crate::model::tag::PREFIX) {
        Some("names under `release=` are Konductor's")
    } else if tag.starts_with(CLAIM_PREFIX) {
        Some("names under `env=` are Konductor's environment claims")
    } else if tag.starts_with('-') {
        Some("a tag name cannot start with `-`")
    } else if !git2::Reference::is_valid_name(&format!("refs/tags/{tag}")) {
        Some("it is not a valid git ref name")
    } else {
        None
    }
}

/// The number `k` of an environment's tag (a claim `env=<env>.<k>` or a record
/// `env=<env>=<k>`), when `env` is an environment name and `k` a number from 1 to
/// [`MAX_CLAIM`] written without leading zeros.
pub fn env_number(env: &str, k: &str) -> Option<u32> {
    if env_name_problem(env).is_some()
        || k.is_empty()
        || k.len() > 9
        || !k.bytes().all(|b| b.is_ascii_digit())
        || k.starts_with('0')
    {
        return None;
    }
    let n: u32 = k.parse().ok()?;
    (n <= MAX_CLAIM).then_some(n)
}

/// A claim tag: `env=<environment>.<k>`, turn `k` (from 1) of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Claim {
    /// The environment.
    pub env: String,
    /// The turn, from 1.
    pub turn: u32,
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CLAIM_PREFIX}{}.{}", self.env, self.turn)
    }
}

impl Claim {
    /// Parse a claim tag name (with or without `refs/tags/`); `None` for anything else.
    pub fn parse(name: &str) -> Option<Claim> {
        let name = name.strip_prefix("refs/tags/").unwrap_or(name);
        let rest = name.strip_prefix(CLAIM_PREFIX)?;
        let (env, k) = rest.rsplit_once('.')?;
        Some(Claim {
            env: env.to_string(),
            turn: env_number(env, k)?,
        })
    }

    /// The glob of every claim of `env`.
    pub fn glob(env: &str) -> String {
        format!("{CLAIM_PREFIX}{env}.*")
    }

    /// The message of the claim tag: the summary, then the `train:` and `step:` fields
    /// readers take the holder from.
    pub fn message(&self, train: TrainId, step: &str) -> String {
        format!(
            "claim `{}` turn {} for train {train}\n\ntrain: {train}\nstep: {step}\n",
            self.env, self.turn
        )
    }
}

/// Where another train stands with one environment, from its own tags (see
/// [`EnvFacts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvPhase {
    /// Its deploy step's dependencies are done and it was never triggered: it would deploy.
    Ready,
    /// It holds the environment's newest claim and its deploy step is not finished:
    /// triggered, started, failed with a retry to come, or claimed and not triggered yet.
    Deploying,
    /// Its deploy step succeeded.
    Deployed,
}

/// What every reader computes the same way about one environment from the claims and the
/// other trains' tags: the facts the planner decides a deploy step from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnvFacts {
    /// The next claim number: one more than the highest any claim tag of the environment
    /// uses, trusted or not (a squatted number is never reused).
    pub next_turn: u32,
    /// The train holding the newest trusted claim, if any.
    pub holder: Option<TrainId>,
    /// The train whose deploy is in flight here (see [`EnvPhase::Deploying`]), if any.
    pub deploying: Option<TrainId>,
    /// The newest train that ever held a claim: no older train deploys here any more
    /// (hotfixes aside, see [`crate::model::plan`]).
    pub high_water: Option<TrainId>,
    /// Other trains and where they stand (ready, deploying, deployed), newest last.
    pub trains: BTreeMap<TrainId, EnvPhase>,
    /// The freeze and pin in force, from the environment's control records
    /// (`env=<environment>=<k>`, see [`crate::model::freeze`]).
    pub controls: crate::model::freeze::Controls,
}

impl EnvFacts {
    /// The newest train other than `me` that is ready to deploy here.
    pub fn newest_ready(&self, me: TrainId) -> Option<TrainId> {
        self.trains
            .iter()
            .rev()
            .find(|(t, p)| **t != me && **p == EnvPhase::Ready)
            .map(|(t, _)| *t)
    }
}

/// The facts of every environment, by name.
pub type Environments = BTreeMap<String, EnvFacts>;

/// One claim tag as a reader found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenClaim {
    /// The turn.
    pub turn: u32,
    /// The train its message names, when the claim is trusted (signed when signatures are
    /// required, on that train's commit when the reader knows it); `None` otherwise: it
    /// still takes its number.
    pub train: Option<TrainId>,
}

/// Where one train stands with one environment, from its own tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenTrain {
    /// Ready, deploying or deployed; `None` for none of these (not ready yet, finished
    /// with a failure, superseded, cancelled).
    pub phase: Option<EnvPhase>,
    /// Whether its deploy step was ever triggered.
    pub tried: bool,
}

/// The facts of one environment from its claims and the trains a reader sees: the one
/// function every reader computes them with, so that all agree on the same tags.
pub fn combine(claims: &[SeenClaim], trains: &BTreeMap<TrainId, SeenTrain>) -> EnvFacts {
    let mut facts = EnvFacts::default();
    let top = claims.iter().map(|c| c.turn).max().unwrap_or(0);
    facts.next_turn = top.saturating_add(1);
    facts.holder = claims
        .iter()
        .filter_map(|c| c.train.map(|t| (c.turn, t)))
        .max()
        .map(|(_, t)| t);
    facts.high_water = claims.iter().filter_map(|c| c.train).max();
    for (&t, s) in trains {
        if s.tried {
            facts.high_water = facts.high_water.max(Some(t));
        }
        // A holder that claimed and has not triggered yet is deploying: its next tick
        // triggers.
        let phase = match s.phase {
            Some(EnvPhase::Ready) if facts.holder == Some(t) => Some(EnvPhase::Deploying),
            p => p,
        };
        if let Some(p) = phase {
            facts.trains.insert(t, p);
            if p == EnvPhase::Deploying {
                facts.deploying = facts.deploying.max(Some(t));
            }
        }
    }
    facts
}

/// Which claims `konductor gc` may delete, as indexes into `claims` ((claim, the train
/// its message names when trusted)): per environment it keeps the newest claim (so a
/// claim number is never reused), the newest trusted one (the holder), the claim of the
/// newest train (the high-water mark, hotfixes aside), and every claim of a train in
/// `live` (still has tags). The
/// facts [`combine`] computes for the live trains are then the same before and after.
pub fn claims_to_prune(
    claims: &[(Claim, Option<TrainId>)],
    live: &std::collections::BTreeSet<TrainId>,
) -> Vec<usize> {
    let mut newest: BTreeMap<&str, u32> = BTreeMap::new();
    let mut holder: BTreeMap<&str, u32> = BTreeMap::new();
    let mut highest: BTreeMap<&str, (TrainId, u32)> = BTreeMap::new();
    for (c, t) in claims {
        let n = newest.entry(c.env.as_str()).or_insert(c.turn);
        *n = (*n).max(c.turn);
        if let Some(t) = t {
            let h = holder.entry(c.env.as_str()).or_insert(c.turn);
            *h = (*h).max(c.turn);
            let h = highest.entry(c.env.as_str()).or_insert((*t, c.turn));
            *h = (*h).max((*t, c.turn));
        }
    }
    claims
        .iter()
        .enumerate()
        .filter(|(_, (c, t))| {
            let keep = newest.get(c.env.as_str()) == Some(&c.turn)
                || holder.get(c.env.as_str()) == Some(&c.turn)
                || highest.get(c.env.as_str()).map(|h| h.1) == Some(c.turn)
                || t.is_some_and(|t| live.contains(&t));
            !keep
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_junk_is_not_a_claim() {
        let c = Claim {
            env: "staging".into(),
            turn: 12,
        };
        assert_eq!(c.to_string(), "env=staging.12");
        assert_eq!(Claim::parse("refs/tags/env=staging.12"), Some(c));
        for junk in [
            "env=staging",
            "env=staging.0",
            "env=staging.01",
            "env=.1",
            "env=a b.1",
            "env=staging.1000000000",
            "env=staging.x",
            "release=1.0",
            "staging-k8s",
        ] {
            assert_eq!(Claim::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn environment_names_fit_in_a_tag() {
        for ok in ["staging", "prod-eu_1", "k8s"] {
            assert_eq!(env_name_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("a.b", "`.`"),
            ("a=b", "`=`"),
            ("a b", "a space"),
            ("-x", "start with"),
            (&"x".repeat(33)[..], "longer than 32"),
        ] {
            let p = env_name_problem(bad).unwrap_or_default();
            assert!(p.contains(why), "{bad}: {p}");
        }
    }

    #[test]
    fn deploy_tags_outside_konductors_names() {
        for (name, ok) in [
            ("staging-k8s", true),
            ("release=1.0", false),
            ("env=staging.1", false),
            ("", false),
            ("-x", false),
            ("a..b", false),
        ] {
            assert_eq!(deploy_tag_problem(name).is_none(), ok, "{name:?}");
        }
    }
    #[test]
    fn gc_prunes_old_claims_but_keeps_the_newest_the_high_water_and_live_ones() {
        let c = |env: &str, turn: u32, t: Option<(u32, u32)>| {
            (
                Claim {
                    env: env.into(),
                    turn,
                },
                t.map(|(n, p)| TrainId::new(n, p)),
            )
        };
        let claims = vec![
            c("staging", 1, Some((1, 0))),
            c("staging", 2, Some((2, 0))),
            c("staging", 3, Some((4, 0))), // the high-water mark
            c("staging", 4, Some((3, 1))), // the holder: a hotfix
            c("staging", 5, None),         // the newest number, untrusted
            c("production", 1, Some((1, 0))),
            c("production", 2, Some((2, 0))), // a live train
            c("production", 3, Some((3, 0))),
        ];
        let live = [TrainId::new(2, 0)].into_iter().collect();
        let pruned: Vec<String> = claims_to_prune(&claims, &live)
            .into_iter()
            .map(|i| claims[i].0.to_string())
            .collect();
        assert_eq!(pruned, ["env=staging.1", "env=production.1"]);
        // The facts of what is left are those of everything.
        let facts = |cs: &[(Claim, Option<TrainId>)], env: &str| {
            let seen: Vec<SeenClaim> = cs
                .iter()
                .filter(|(c, _)| c.env == env)
                .map(|(c, t)| SeenClaim {
                    turn: c.turn,
                    train: *t,
                })
                .collect();
            combine(&seen, &BTreeMap::new())
        };
        let left: Vec<_> = claims
            .iter()
            .filter(|(c, _)| !pruned.contains(&c.to_string()))
            .cloned()
            .collect();
        for env in ["staging", "production"] {
            let (a, b) = (facts(&claims, env), facts(&left, env));
            assert_eq!(
                (a.next_turn, a.holder, a.high_water),
                (b.next_turn, b.holder, b.high_water),
                "{env}"
            );
        }
    }
}
