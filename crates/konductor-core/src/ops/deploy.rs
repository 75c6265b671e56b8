//! GitOps deploys: `locomotive publish-manifests` and its compare-and-swap push.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::git::store::{Identity, Store};
use crate::model::tag::Tag;

#[allow(unused_imports)]
use super::*;

/// Options for `locomotive publish-manifests`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Directory with the generated manifests.
    pub dir: std::path::PathBuf,
    /// The moving tag ArgoCD syncs from (`staging-k8s`, `k8s-production`).
    pub tag: String,
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
    let tag = opts.tag.trim();
    if let Some(why) = deploy_tag_problem(tag) {
        return Err(Error::input(format!(
            "`{tag}` cannot be a deploy tag: {why}; use a valid tag name outside `release=`, like `staging-k8s`"
        )));
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
    scan.check(&opts.dir, tag)?;
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
    let msg = format!(
        "deploy train {} to {tag}\n\ntrain: {}\nsource: {}\ntrigger: {trig_name}\nby: {who}\n",
        trig.train, trig.train, source
    );
    let commit = store.commit_dir(&scan, previous_commit.as_deref(), &msg, who, now)?;
    store.push_ref_cas(&refname, &commit, previous.as_deref())?;
    Ok(PublishResult {
        tag: tag.to_string(),
        previous,
        commit,
        train: trig.train.to_string(),
        empty_dirs: scan.empty_dirs,
    })
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
