//! Argument parsing, dispatch, and the mapping of errors to exit codes.

use clap::{Args, Parser, Subcommand};
use konductor_core::error::Error;
use konductor_core::exit_codes;
use konductor_core::store::{CacheLocation, Remote, Store};

use crate::commands;

/// Report a CI job's state to Konductor, with no checkout needed
///
/// Jobs started by a Konductor trigger tag call `locomotive set-step-state` when they
/// start and when they end. See docs/ for the tag protocol and CI wiring.
#[derive(Debug, Parser)]
#[command(
    name = "locomotive",
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
    SetStepState(commands::set_step_state::SetStepStateArgs),
    PublishManifests(commands::publish_manifests::PublishManifestsArgs),
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
        help_heading = "Remote"
    )]
    pub remote: Option<String>,

    /// Sign every tag written with this SSH private key (git's SSH signature format)
    #[arg(
        long,
        env = "KONDUCTOR_SIGNING_KEY",
        value_name = "FILE",
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
        help_heading = "Signing"
    )]
    pub allowed_signers: Option<std::path::PathBuf>,
}

impl RemoteArgs {
    pub fn remote(&self) -> anyhow::Result<Remote> {
        let spec = match &self.remote {
            Some(r) if !r.trim().is_empty() => r.clone(),
            _ => Store::local_origin_url().ok_or_else(|| {
                Error::input("no remote: pass `--remote`, set `KONDUCTOR_REMOTE`, or run inside a clone that has an `origin`")
            })?,
        };
        Ok(Remote::parse(&spec)?)
    }

    pub fn open(&self, location: CacheLocation) -> anyhow::Result<Store> {
        let mut store = Store::open(self.remote()?, location)?;
        store.set_signing(self.signing_key.clone(), self.allowed_signers.clone())?;
        Ok(store)
    }
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
        Command::SetStepState(a) => commands::set_step_state::cmd_set_step_state(a),
        Command::PublishManifests(a) => commands::publish_manifests::cmd_publish_manifests(a),
        Command::Completions(a) => commands::meta::cmd_completions(a),
        Command::Man(a) => commands::meta::cmd_man(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = konductor_core::error::exit_code_for(e.chain());
            if code == exit_codes::OK {
                return code; // a broken pipe: the reader went away
            }
            eprintln!("locomotive: error: {e:#}");
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
