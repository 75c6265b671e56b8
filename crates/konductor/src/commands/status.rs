use std::io::IsTerminal as _;

use clap::Args;
use konductor_core::model::diff::DEFAULT_LIMIT;
use konductor_core::ops::diff::{Brings, Side};
use konductor_core::ops::{plan_train_any, refresh_train, DEFAULT_HORIZON};
use konductor_core::report::{status_list, TrainReport};

use crate::out;
use crate::render;

/// Show the state of one train, or of the newest trains
///
/// `--json` prints one object for `--train`, else `{"trains": [...]}`; the fields are
/// documented in docs/status-json.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # the newest trains, and where staging and production are\n  konductor status\n  # one train's steps, and any gate's unblock command\n  konductor status --train 1.0\n  # redraw until it ends\n  konductor status --train 1.0 --watch"
)]
pub struct StatusArgs {
    /// Only this train (`N.P`)
    #[arg(long, value_name = "N.P")]
    pub train: Option<String>,
    /// How many of the newest train numbers to list
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HORIZON)]
    pub horizon: u32,
    /// Redraw every few seconds until the train ends (needs `--train`)
    #[arg(long, requires = "train")]
    pub watch: bool,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_status(args: StatusArgs) -> anyhow::Result<i32> {
    let store = args.remote.open()?;
    let now = konductor_core::time::now();
    let color = render::use_color();
    match args.train.as_deref().map(super::parse_train).transpose()? {
        Some(t) => {
            let mut changes = None;
            loop {
                refresh_train(&store, t)?;
                let (p, archived) =
                    plan_train_any(&store, t, None, None, konductor_core::time::now())?;
                let mut r = TrainReport::new(&p);
                r.archived = archived;
                // What the train brings: read once, also when watching.
                let changes = changes.get_or_insert_with(|| {
                    konductor_core::ops::diff::brings(&store, t, &p.sdd, DEFAULT_LIMIT)
                });
                if args.output.json {
                    let v = konductor_core::ops::diff::WithChanges {
                        report: &r,
                        changes: konductor_core::ops::diff::brings_json(changes),
                    };
                    out!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    let text = render::train_table(&r, now, color);
                    if args.watch && std::io::stdout().is_terminal() {
                        print!("\x1b[H\x1b[2J");
                    }
                    out!("{text}");
                    out!("{}", brings_text(changes));
                }
                if !args.watch || r.state.is_finished() || r.state.as_str() == "failed" {
                    return Ok(0);
                }
                std::thread::sleep(std::time::Duration::from_secs(3));
            }
        }
        None => {
            let list = status_list(&store, args.horizon, now)?;
            if args.output.json {
                // Through a `Value`: the list form's keys are sorted (docs/status-json.md).
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::to_value(&list)?)?
                );
            } else {
                // Where each environment stands comes from its deploy tag (a rollback
                // included), not from how far each train got.
                let envs = konductor_core::ops::env_control::env_view_of_list(&store, &list, now)
                    .unwrap_or_else(|e| {
                        eprintln!("konductor: warning: environments: {e}");
                        Vec::new()
                    });
                out!("{}", render::train_list(&list.trains, &envs, now, color));
                for e in &list.errors {
                    eprintln!("konductor: warning: train {}: {}", e.train, e.error);
                }
                for w in konductor_core::discover::ignored_warnings(&list.ignored) {
                    eprintln!("konductor: warning: {w}");
                }
            }
            Ok(0)
        }
    }
}

/// How many pull requests `status --train` names per side.
const FIRST_PRS: usize = 5;

/// `brings over train 1.0: 5 commits, 3 pull requests (#7, #42, #41), 3 files`.
fn brings_text(b: &Brings) -> String {
    let line = |label: &str, side: &Side| match side {
        Side::Diff(d) => {
            let over = d.from.describe();
            if d.commits_total == 0 {
                return format!("brings over {over}: nothing ({})", d.relation.as_str());
            }
            let mut prs: Vec<String> = d
                .pull_requests
                .iter()
                .take(FIRST_PRS)
                .map(|p| match &p.project {
                    Some(proj) => format!("{proj}!{} {}", p.number, p.title),
                    None => format!("#{} {}", p.number, p.title),
                })
                .collect();
            if d.pull_requests_total > prs.len() {
                prs.push(format!("… {} more", d.pull_requests_total - prs.len()));
            }
            let prs = if prs.is_empty() {
                String::new()
            } else {
                format!(" ({})", prs.join("; "))
            };
            format!(
                "brings over {over}: {} commits, {} pull requests{prs}, {} files",
                d.commits_total, d.pull_requests_total, d.files_total
            )
        }
        Side::None { note } => format!("brings over {label}: {note}"),
    };
    format!(
        "\n{}\n{}",
        line("the train before", &b.previous),
        line("production", &b.production)
    )
}
