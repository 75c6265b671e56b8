use std::io::IsTerminal as _;

use clap::Args;
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
        Some(t) => loop {
            refresh_train(&store, t)?;
            let (p, archived) = plan_train_any(&store, t, None, None, konductor_core::time::now())?;
            let mut r = TrainReport::new(&p);
            r.archived = archived;
            if args.output.json {
                out!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let text = render::train_table(&r, now, color);
                if args.watch && std::io::stdout().is_terminal() {
                    print!("\x1b[H\x1b[2J");
                }
                out!("{text}");
            }
            if !args.watch || r.state.is_finished() || r.state.as_str() == "failed" {
                return Ok(0);
            }
            std::thread::sleep(std::time::Duration::from_secs(3));
        },
        None => {
            let list = status_list(&store, args.horizon, now)?;
            if args.output.json {
                // Through a `Value`: the list form's keys are sorted (docs/status-json.md).
                out!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::to_value(&list)?)?
                );
            } else {
                out!("{}", render::train_list(&list.trains, now, color));
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
