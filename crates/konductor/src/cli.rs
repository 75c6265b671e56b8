//! The command line: one subcommand enum and its dispatch. The flag groups, `completions`,
//! `man` and the error line both programs share are in `konductor-cli`.

use clap::Parser;

use crate::commands;

/// Advance release trains through a step graph, with git tags as the only state
///
/// Konductor reads a train's tags, triggers every step whose dependencies succeeded by
/// pushing a trigger tag, and lets CI jobs report back through `locomotive`.
/// See docs/ for the SDD format, the tag protocol and the exit codes.
#[derive(Debug, Parser)]
#[command(name = "konductor")]
pub enum Command {
    Validate(commands::validate::ValidateArgs),
    Graph(commands::graph::GraphArgs),
    Simulate(commands::simulate::SimulateArgs),
    Start(commands::start::StartArgs),
    Tick(commands::tick::TickArgs),
    Status(commands::status::StatusArgs),
    Log(commands::log::LogArgs),
    Unblock(commands::control::UnblockArgs),
    Retry(commands::control::RetryArgs),
    Cancel(commands::control::CancelArgs),
    Board(commands::board::BoardArgs),
    CiFilter(commands::ci_filter::CiFilterArgs),
    Doctor(commands::doctor::DoctorArgs),
    Gc(commands::gc::GcArgs),
    Metrics(commands::metrics::MetricsArgs),
    Freeze(commands::env::FreezeArgs),
    Unfreeze(commands::env::UnfreezeArgs),
    Rollback(commands::env::RollbackArgs),
    Unpin(commands::env::UnpinArgs),
    Env(commands::env::EnvArgs),
    Serve(commands::serve::ServeArgs),
    DeployRecord(commands::deploy_record::DeployRecordArgs),
    Diff(commands::diff::DiffArgs),
    #[command(flatten)]
    Meta(konductor_cli::MetaCommand),
}

pub fn run() -> i32 {
    konductor_cli::run(|command| match command {
        Command::Validate(a) => commands::validate::cmd_validate(a),
        Command::Graph(a) => commands::graph::cmd_graph(a),
        Command::Simulate(a) => commands::simulate::cmd_simulate(a),
        Command::Start(a) => commands::start::cmd_start(a),
        Command::Tick(a) => commands::tick::cmd_tick(a),
        Command::Status(a) => commands::status::cmd_status(a),
        Command::Log(a) => commands::log::cmd_log(a),
        Command::Unblock(a) => commands::control::cmd_unblock(a),
        Command::Retry(a) => commands::control::cmd_retry(a),
        Command::Cancel(a) => commands::control::cmd_cancel(a),
        Command::Board(a) => commands::board::cmd_board(a),
        Command::CiFilter(a) => commands::ci_filter::cmd_ci_filter(a),
        Command::Doctor(a) => commands::doctor::cmd_doctor(a),
        Command::Gc(a) => commands::gc::cmd_gc(a),
        Command::Metrics(a) => commands::metrics::cmd_metrics(a),
        Command::Freeze(a) => commands::env::cmd_freeze(a),
        Command::Unfreeze(a) => commands::env::cmd_unfreeze(a),
        Command::Rollback(a) => commands::env::cmd_rollback(a),
        Command::Unpin(a) => commands::env::cmd_unpin(a),
        Command::Env(a) => commands::env::cmd_env(a),
        Command::Serve(a) => commands::serve::cmd_serve(a),
        Command::DeployRecord(a) => commands::deploy_record::cmd_deploy_record(a),
        Command::Diff(a) => commands::diff::cmd_diff(a),
        Command::Meta(m) => m.run::<Command>(),
    })
}

#[test]
fn verify_app() {
    konductor_cli::command::<Command>().debug_assert();
}
