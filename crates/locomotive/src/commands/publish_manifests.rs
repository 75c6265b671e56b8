use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use konductor_core::ops::{publish_manifests, PublishOptions};
use konductor_core::store::{CacheLocation, Identity};

/// Publish generated Kubernetes manifests under a moving tag that ArgoCD syncs
///
/// Commits DIR as a dangling commit whose parent is the previous commit under `--tag`
/// (so `git log <tag>` is the deploy history) and moves the tag there. A tag that moved
/// meanwhile is reported (exit 5) and nothing is overwritten.
///
/// Deploys only move forward: a train older than the one the tag holds (the `train:` of
/// its deploy commit) is refused (exit 2, nothing moved), except a hotfix the planner let
/// through (it holds the environment's newest claim). The same train again with the same
/// manifests publishes nothing (exit 0). Without `--tag`, the tag is the deploy step's
/// `deploy_tag` in the `sdd.yaml` at the train's commit.
///
/// Files keep their executable bit; a symlink whose target is inside DIR is committed as
/// the target's content. A symlink leading outside DIR, a dangling one, a symlink loop, a
/// fifo, a socket or a device refuses the whole publish (exit 2, every such path listed,
/// nothing pushed). Empty folders cannot be held by git: they are left out, with a
/// warning. See docs/integrations.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # move `staging-k8s` to k8s/out\n  locomotive publish-manifests --dir k8s/out --tag staging-k8s --triggering-tag \"$TAG\"\n  # the same, the tag read from the deploy step's `deploy_tag`\n  locomotive publish-manifests --dir k8s/out --triggering-tag \"$TAG\""
)]
pub struct PublishManifestsArgs {
    /// Directory holding the manifests (committed recursively; `.git` is skipped, symlinks
    /// inside it are committed as their targets)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The moving tag, e.g. `staging-k8s` or `k8s-production` [default: the step's
    /// `deploy_tag` in the train's `sdd.yaml`]
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// The trigger tag of the deploy step (`release=N.P=<step>.<job>`)
    #[arg(long, value_name = "TAG")]
    pub triggering_tag: String,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

pub fn cmd_publish_manifests(args: PublishManifestsArgs) -> anyhow::Result<i32> {
    let store = args.remote.open_at(CacheLocation::Temporary)?;
    let who = Identity::from_env("locomotive");
    let opts = PublishOptions {
        dir: args.dir,
        tag: args.tag,
        triggering_tag: args.triggering_tag,
    };
    let r = publish_manifests(&store, &opts, &who, konductor_core::time::now())?;
    for d in &r.empty_dirs {
        eprintln!(
            "locomotive: warning: empty folder `{d}` was not published: git cannot hold an empty folder, and Argo CD finds no manifest in one"
        );
    }
    if r.unchanged {
        writeln!(
            std::io::stdout().lock(),
            "{}: {} already holds train {} with these manifests; nothing published",
            r.tag,
            &r.commit[..10],
            r.train
        )?;
        return Ok(0);
    }
    writeln!(
        std::io::stdout().lock(),
        "{}: {} -> {} (train {})",
        r.tag,
        r.previous
            .as_deref()
            .map_or("(new)", |p| &p[..p.len().min(10)]),
        &r.commit[..10],
        r.train
    )?;
    Ok(0)
}
