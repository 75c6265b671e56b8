//! GitOps deploys: `locomotive publish-manifests` and its compare-and-swap push.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::{Identity, Store};
use crate::model::env::Claim;
use crate::model::sdd::Sdd;
use crate::model::tag::{Tag, TrainId};
use crate::model::train::{message_field, short};

#[allow(unused_imports)]
use super::*;

/// Options for `locomotive publish-manifests`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Directory with the generated manifests.
    pub dir: std::path::PathBuf,
    /// The moving tag ArgoCD syncs from (`staging-k8s`, `k8s-production`); `None` takes
    /// the deploy step's `deploy_tag` from the graph at the train's commit.
    pub tag: Option<String>,
    /// The trigger of the deploy step.
    pub triggering_tag: String,
}

/// What `publish-manifests` did.
#[derive(Debug, Clone, Serialize)]
pub struct PublishResult {
    /// The moving tag.
    pub tag: String,
    /// The previous deploy commit, if any.
    pub previous: Option<String>,
    /// The new deploy commit.
    pub commit: String,
    /// The train.
    pub train: String,
    /// Folders left out because git cannot hold them empty, as paths with a trailing `/`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_dirs: Vec<String>,
    /// The tag already held this train with the same manifests: nothing was pushed, and
    /// `commit` is the deploy commit already there.
    pub unchanged: bool,
}

pub use crate::model::env::deploy_tag_problem;

/// Commit the manifests in `dir` as a dangling commit whose parent is the previous deploy
/// commit under `tag`, then move `tag` there with a compare-and-swap push: a tag moved
/// meanwhile is a [`Error::Conflict`], never a silent overwrite. A folder that holds
/// anything git cannot commit as it is (see [`crate::git::manifests`]) is refused before
/// anything is read from the remote: nothing is pushed and the tag does not move.
pub fn publish_manifests(
    store: &Store,
    opts: &PublishOptions,
    who: &Identity,
    now: i64,
) -> Result<PublishResult> {
    let given = opts.tag.as_deref().map(str::trim);
    if let Some(tag) = given {
        check_deploy_tag(tag)?;
    }
    let meta = std::fs::metadata(&opts.dir).map_err(|e| Error::Io {
        what: format!("cannot read manifest directory `{}`", opts.dir.display()),
        source: e,
    })?;
    if !meta.is_dir() {
        return Err(Error::input(format!(
            "`{}` is not a directory",
            opts.dir.display()
        )));
    }
    let scan = crate::git::manifests::scan(&opts.dir)?;
    scan.check(&opts.dir, given.unwrap_or("the deploy tag"))?;
    let trig = match opts.triggering_tag.parse::<Tag>()? {
        Tag::Trigger(tr) => tr,
        other => {
            return Err(Error::input(format!(
                "`{other}` is not a trigger tag; expected `release=N.P=<step>.<job>`"
            )))
        }
    };
    let trig_name = trig.tag().to_string();
    let not_found = || super::control::missing_trigger(store, &trig);
    let source = if store.requires_signatures() {
        // Only a trigger a listed key signed may move a deploy tag. Checking the signature
        // needs the tag object; its record also gives the commit.
        // A glob, as in set_step_state: a trigger the remote lacks is then "does not exist"
        // (exit 2), not a failed fetch of a missing ref.
        store.refresh(&[format!("{trig_name}*")])?;
        let record = store.tag_record(&trig_name).ok_or_else(not_found)?;
        require_trusted_trigger(store, &record, "deploy for it")?;
        record.commit
    } else {
        // Read the trigger's commit from the advertisement: the deploy commit does not
        // need the train's objects, only its id for the message.
        let refs = store.ls_remote()?;
        let find = |n: &str| refs.iter().find(|r| r.name == n).map(|r| r.oid.clone());
        find(&format!("refs/tags/{trig_name}^{{}}"))
            .or_else(|| find(&format!("refs/tags/{trig_name}")))
            .ok_or_else(not_found)?
    };
    // The graph at the train's commit, read once and only when needed: for the step's
    // `deploy_tag` when `--tag` is omitted, or for its environment when a hotfix would
    // move the tag back.
    let mut graph: Option<Sdd> = None;
    let mut read_graph = || -> Result<Sdd> {
        if graph.is_none() {
            refresh_train(store, trig.train)?;
            let obs = observe(store, trig.train)?;
            graph = Some(train_sdd(store, &obs, None)?);
        }
        Ok(graph.clone().expect("read above"))
    };
    let tag: String = match given {
        Some(t) => t.to_string(),
        None => {
            let sdd = read_graph()?;
            let step = sdd.step(&trig.step).ok_or_else(|| {
                Error::input(format!(
                    "`{}` is not a step of train {}'s graph, so it has no deploy tag; pass `--tag TAG`",
                    trig.step, trig.train
                ))
            })?;
            let t = step.deploy_tag.clone().ok_or_else(|| {
                Error::input(format!(
                    "step `{}` of train {} has no `deploy_tag` in its `sdd.yaml` and no `--tag` was given; pass `--tag TAG`, or give the step `environment:` and `deploy_tag:` (see docs/sdd.md)",
                    trig.step, trig.train
                ))
            })?;
            check_deploy_tag(&t)?;
            t
        }
    };
    let tag = tag.as_str();
    // A pinned environment (after `konductor rollback`) takes no deploy until `unpin`, not
    // even a CI re-run of a deploy job: the forward check below would let a newer train
    // undo the rollback. (A freeze lets deploys in flight finish, so it is not checked.)
    if let Some(env) = read_graph()
        .ok()
        .and_then(|g| g.step(&trig.step).and_then(|s| s.environment.clone()))
    {
        let controls = super::env_control::refresh_controls(store, &env)?;
        if let Some(p) = &controls.pinned {
            let to = p.train.map(|t| format!(" to {t}")).unwrap_or_default();
            return Err(Error::input(format!(
                "`{env}` is pinned{to} by {} ({}); no deploy goes there until `konductor unpin --env {env}`: nothing was published and `{tag}` was not moved",
                p.by, p.reason
            )));
        }
    }
    let refname = format!("refs/tags/{tag}");
    let previous = if store.fetch_ref(&refname)? {
        store.ref_target(&refname)
    } else {
        None
    };
    let previous_commit = match &previous {
        Some(p) => Some(store.ensure_commit(p)?),
        None => None,
    };
    // Forward only: the train the tag holds now, from its deploy commit's `train:` field.
    let head = previous_commit
        .as_deref()
        .and_then(|p| store.first_parent_chain(p, 1).into_iter().next());
    let held = head
        .as_ref()
        .and_then(|c| message_field(&c.message, "train"))
        .and_then(|v| v.parse::<TrainId>().ok());
    if let Some(h) = held.filter(|h| trig.train < *h) {
        let hotfix_let_through = trig.train.patch > 0 && {
            let sdd = read_graph()?;
            match sdd.step(&trig.step).and_then(|s| s.environment.clone()) {
                Some(e) => newest_claim_holder(store, &e)? == Some(trig.train),
                None => false,
            }
        };
        if !hotfix_let_through {
            let at = previous_commit.as_deref().map(short).unwrap_or_default();
            return Err(Error::input(format!(
                "train {} is older than train {h}, which `{tag}` holds (deploy commit {at}); deploys only move forward: nothing was published and `{tag}` was not moved; to go back, roll back with `konductor rollback`",
                trig.train
            )));
        }
    }
    let msg = format!(
        "deploy train {} to {tag}\n\ntrain: {}\nsource: {}\ntrigger: {trig_name}\nby: {who}\n",
        trig.train, trig.train, source
    );
    let commit = store.commit_dir(&scan, previous_commit.as_deref(), &msg, who, now)?;
    // The same train with the same manifests (a CI re-run of the deploy job): the tag
    // already holds this deploy; a second commit would only blur the history.
    if let (Some(h), Some(head)) = (held, &head) {
        let new_tree = store
            .first_parent_chain(&commit, 1)
            .into_iter()
            .next()
            .map(|c| c.tree);
        if h == trig.train && new_tree.as_deref() == Some(head.tree.as_str()) {
            return Ok(PublishResult {
                tag: tag.to_string(),
                previous: previous.clone(),
                commit: head.id.clone(),
                train: trig.train.to_string(),
                empty_dirs: scan.empty_dirs,
                unchanged: true,
            });
        }
    }
    store.push_ref_cas(&refname, &commit, previous.as_deref())?;
    Ok(PublishResult {
        tag: tag.to_string(),
        previous,
        commit,
        train: trig.train.to_string(),
        empty_dirs: scan.empty_dirs,
        unchanged: false,
    })
}

fn check_deploy_tag(tag: &str) -> Result<()> {
    match deploy_tag_problem(tag) {
        Some(why) => Err(Error::input(format!(
            "`{tag}` cannot be a deploy tag: {why}; use a valid tag name outside `release=`, like `staging-k8s`"
        ))),
        None => Ok(()),
    }
}

/// The train holding the newest trusted claim of environment `env` on the remote (see
/// [`crate::model::env`]), if any.
pub fn newest_claim_holder(store: &Store, env: &str) -> Result<Option<TrainId>> {
    store.refresh(&[Claim::glob(env)])?;
    let mut best: Option<(u32, TrainId)> = None;
    for r in store.tag_records(&Claim::glob(env))? {
        let Some(c) = Claim::parse(&r.name).filter(|c| c.env == env) else {
            continue;
        };
        let trusted = !store.requires_signatures() || r.signer.is_some();
        let Some(train) = message_field(&r.message, "train")
            .and_then(|v| v.parse::<TrainId>().ok())
            .filter(|_| trusted)
        else {
            continue;
        };
        if best.is_none_or(|(turn, _)| c.turn > turn) {
            best = Some((c.turn, train));
        }
    }
    Ok(best.map(|(_, t)| t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_tag_names_are_what_git_accepts() {
        let cases = [
            ("staging-k8s", true),
            ("k8s/production", true),
            ("v1.2.3", true),
            ("--upload-pack=touch", false),
            ("-x", false),
            ("", false),
            ("release=1.0", false),
            ("a..b", false),
            ("a b", false),
            ("a~1", false),
            ("a^", false),
            ("a:b", false),
            ("a?", false),
            ("a[b", false),
            ("a.lock", false),
            ("a/", false),
            ("a//b", false),
            ("@", true),
            ("a@{1}", false),
            ("a\\b", false),
            ("x.", false),
            (".x", false),
            ("a\u{7f}b", false),
        ];
        for (name, ok) in cases {
            assert_eq!(deploy_tag_problem(name).is_none(), ok, "{name:?}");
            // The same verdict as git's, apart from what Konductor refuses on top.
            if !name.is_empty() && !name.starts_with('-') && !name.starts_with("release=") {
                let git = std::process::Command::new("git")
                    .args(["check-ref-format", &format!("refs/tags/{name}")])
                    .status()
                    .expect("run git check-ref-format");
                assert_eq!(git.success(), ok, "git check-ref-format {name:?}");
            }
        }
    }
}
