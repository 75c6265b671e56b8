use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use konductor_core::ops::{discover, DEFAULT_HORIZON};
use konductor_core::report::TrainReport;

use crate::out;

/// Write the static HTML board: every train, its step graph, gates, environments
///
/// One self-contained `index.html` (no server, no external scripts or fonts) that can be
/// published as a CI artifact or on any static host.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # write public/index.html\n  konductor board --out public\n  # open it (macOS: open public/index.html)\n  xdg-open public/index.html"
)]
pub struct BoardArgs {
    /// Directory to write `index.html` (and `board.json`) into
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many of the newest train numbers to show
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HORIZON)]
    pub horizon: u32,
    /// For how many of the newest trains to list the changes (0: none)
    #[arg(long, value_name = "N", default_value_t = CHANGES_TRAINS)]
    pub changes: usize,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

pub fn cmd_board(args: BoardArgs) -> anyhow::Result<i32> {
    let store = args.remote.open()?;
    let now = konductor_core::time::now();
    let mut reports = Vec::new();
    let found = discover(&store, args.horizon.max(1), false)?;
    super::warn_ignored(&found);
    let envs = konductor_core::ops::environments(&store, &found.trains, None, now)?;
    for t in found.trains.iter().rev().copied() {
        match konductor_core::ops::plan_train_in(&store, t, None, None, now, &envs) {
            Ok(p) => reports.push(TrainReport::new(&p)),
            Err(e) => eprintln!("konductor: warning: train {t}: {e}"),
        }
    }
    let env_views =
        konductor_core::ops::env_control::env_view_of(&store, &found.trains, None, None, now)
            .unwrap_or_else(|e| {
                eprintln!("konductor: warning: environments: {e}");
                Vec::new()
            });
    let changes = board_changes(&store, &reports, args.changes);
    let html =
        konductor_web::render_board_with(&reports, &env_views, &changes, now, &store.remote().url);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create `{}`", args.out.display()))?;
    let index = args.out.join("index.html");
    let tmp = args.out.join(".index.html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &index).with_context(|| format!("cannot write `{}`", index.display()))?;
    std::fs::write(
        args.out.join("board.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({ "trains": reports, "environments": env_views, "ignored": found.ignored }),
        )?,
    )?;
    let n = reports.len();
    out!("wrote {} ({n} train{})", index.display(), super::plural(n));
    Ok(0)
}

/// The newest trains whose change lists the board shows by default.
const CHANGES_TRAINS: usize = 5;
/// Commits, pull requests and files listed per change list on the board.
const CHANGES_LIMIT: usize = 50;

/// What each of the newest `n` trains brings over the one before, and what each
/// environment but the last (production) runs that production does not. A list that
/// cannot be read is left out with a warning.
fn board_changes(
    store: &konductor_core::store::Store,
    reports: &[TrainReport],
    n: usize,
) -> konductor_web::BoardChanges {
    use konductor_core::ops::diff::{ahead, deployed, resolve};
    let mut out = konductor_web::BoardChanges::default();
    if n == 0 {
        return out;
    }
    for pair in reports.windows(2).take(n) {
        let (to, from) = (&pair[0].train, &pair[1].train);
        match resolve(store, from)
            .and_then(|a| ahead(store, &a, &resolve(store, to)?, CHANGES_LIMIT))
        {
            Ok(d) => out.trains.push(d),
            Err(e) => eprintln!("konductor: warning: changes of train {to}: {e}"),
        }
    }
    let Some(graph) = reports
        .first()
        .and_then(|r| konductor_core::ops::observe(store, r.train.parse().ok()?).ok())
        .and_then(|o| konductor_core::ops::train_sdd(store, &o, None).ok())
    else {
        return out;
    };
    let envs: Vec<String> = graph
        .environments()
        .iter()
        .map(|(e, _)| e.to_string())
        .collect();
    let Some((prod, others)) = envs.split_last() else {
        return out;
    };
    let Ok(Some(_)) = deployed(store, prod) else {
        return out;
    };
    for env in others {
        if !matches!(deployed(store, env), Ok(Some(_))) {
            continue;
        }
        let r = resolve(store, prod).and_then(|p| {
            let e = resolve(store, env)?;
            ahead(store, &p, &e, CHANGES_LIMIT)
        });
        match r {
            Ok(d) => out.waiting.push(d),
            Err(e) => eprintln!("konductor: warning: changes waiting in `{env}`: {e}"),
        }
    }
    out
}
