//! Argument parsing, dispatch, and the mapping of errors to exit codes.

use clap::{Args, Parser, Subcommand};
use konductor_core::error::Error;
use konductor_core::exit_codes;
use konductor_core::store::{CacheLocation, Remote, Store};

use crate::commands;

/// Advance release trains through a step graph, with git tags as the only state
///
/// Konductor reads a train's tags, triggers every step whose dependencies succeeded by
/// pushing a trigger tag, and lets CI jobs report back through `locomotive`.
/// See docs/ for the SDD format, the tag protocol and the exit codes.
#[derive(Debug, Parser)]
#[command(
    name = "konductor",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
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
    Completions(commands::meta::CompletionsArgs),
    Man(commands::meta::ManArgs),
}

/// Where the trains live.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The git remote: a path, file://, git://, http(s):// or ssh:// URL
    ///
    /// Defaults to $KONDUCTOR_REMOTE, then to `origin` of the repository in the current
    /// directory. Tokens come from $KONDUCTOR_TOKEN or $GITHUB_TOKEN, never the command line.
    #[arg(
        long,
        env = "KONDUCTOR_REMOTE",
        value_name = "REMOTE",
        global = true,
        help_heading = "Remote"
    )]
    pub remote: Option<String>,

    /// Sign every tag written with this SSH private key (git's SSH signature format)
    #[arg(
        long,
        env = "KONDUCTOR_SIGNING_KEY",
        value_name = "FILE",
        global = true,
        help_heading = "Signing"
    )]
    pub signing_key: Option<std::path::PathBuf>,

    /// Trust only tags signed by a key of this allowed-signers file
    ///
    /// The format of git's `gpg.ssh.allowedSignersFile`. Unsigned tags, and tags signed by
    /// an unlisted key, are ignored and reported; manual-gate approvers are then checked
    /// against the verified signer.
    #[arg(
        long,
        env = "KONDUCTOR_ALLOWED_SIGNERS",
        value_name = "FILE",
        global = true,
        help_heading = "Signing"
    )]
    pub allowed_signers: Option<std::path::PathBuf>,
}

impl RemoteArgs {
    pub fn open(&self) -> anyhow::Result<Store> {
        let spec = match &self.remote {
            Some(r) if !r.trim().is_empty() => r.clone(),
            _ => Store::local_origin_url().ok_or_else(|| {
                Error::input("no remote: pass `--remote`, set `KONDUCTOR_REMOTE`, or run inside a clone that has an `origin`")
            })?,
        };
        let mut store = Store::open(Remote::parse(&spec)?, CacheLocation::Auto)?;
        store.set_signing(self.signing_key.clone(), self.allowed_signers.clone())?;
        Ok(store)
    }
}

/// Output format.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print JSON instead of text
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit_codes::BAD_INPUT
            } else {
                exit_codes::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
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
        Command::Completions(a) => commands::meta::cmd_completions(a),
        Command::Man(a) => commands::meta::cmd_man(a),
    };
    finish("konductor", result)
}

/// Print an error once, chain included, and pick the exit code.
pub fn finish(prog: &str, result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = konductor_core::error::exit_code_for(e.chain());
            if code == exit_codes::OK {
                return code; // a broken pipe: the reader went away
            }
            eprintln!("{prog}: error: {e:#}");
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_app() {
        super::Cli::command().debug_assert();
    }
}
