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
    let html =
        konductor_web::render_board_with_envs(&reports, &env_views, now, &store.remote().url);
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
