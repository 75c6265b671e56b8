//! The command line: one subcommand enum and its dispatch. The flag groups, `completions`,
//! `man` and the error line both programs share are in `konductor-cli`.

use clap::Parser;

use crate::commands;

/// Report a CI job's state to Konductor, with no checkout needed
///
/// Jobs started by a Konductor trigger tag call `locomotive set-step-state` when they
/// start and when they end. See docs/ for the tag protocol and CI wiring.
#[derive(Debug, Parser)]
#[command(name = "locomotive")]
pub enum Command {
    SetStepState(commands::set_step_state::SetStepStateArgs),
    PublishManifests(commands::publish_manifests::PublishManifestsArgs),
    #[command(flatten)]
    Meta(konductor_cli::MetaCommand),
}

pub fn run() -> i32 {
    konductor_cli::run(|command| match command {
        Command::SetStepState(a) => commands::set_step_state::cmd_set_step_state(a),
        Command::PublishManifests(a) => commands::publish_manifests::cmd_publish_manifests(a),
        Command::Meta(m) => m.run::<Command>(),
    })
}

#[test]
fn verify_app() {
    konductor_cli::command::<Command>().debug_assert();
}
