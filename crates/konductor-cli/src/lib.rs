//! What the `konductor` and `locomotive` binaries share: the remote, signing and output flag
//! groups, the `completions` and `man` subcommands, and the way a run ends (one error line
//! with the program's name, then the exit code of `docs/exit-codes.md`).
//!
//! The core never sees clap: the flag groups here turn parsed arguments into core values
//! ([`Remote`], [`Store`]).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use konductor_core::error::Error;
use konductor_core::exit_codes;
use konductor_core::store::{CacheLocation, Remote, Store};

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
    pub signing_key: Option<PathBuf>,

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
    pub allowed_signers: Option<PathBuf>,
}

impl RemoteArgs {
    /// The remote named by `--remote`, `$KONDUCTOR_REMOTE` or the current clone's `origin`.
    pub fn remote(&self) -> anyhow::Result<Remote> {
        let spec = match &self.remote {
            Some(r) if !r.trim().is_empty() => r.clone(),
            _ => Store::local_origin_url().ok_or_else(|| {
                Error::input("no remote: pass `--remote`, set `KONDUCTOR_REMOTE`, or run inside a clone that has an `origin`")
            })?,
        };
        Ok(Remote::parse(&spec)?)
    }

    /// Open the remote's store in the usual cache, with the signing flags applied.
    pub fn open(&self) -> anyhow::Result<Store> {
        self.open_at(CacheLocation::Auto)
    }

    /// Open the remote's store at `location`, with the signing flags applied.
    pub fn open_at(&self, location: CacheLocation) -> anyhow::Result<Store> {
        let mut store = Store::open(self.remote()?, location)?;
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

/// The clap command of a program, with the settings both programs share: `--version`
/// (propagated to subcommands) and help wrapped at 100 columns at most.
pub fn command<C: CommandFactory>() -> clap::Command {
    C::command()
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .max_term_width(100)
}

/// The subcommands every program has: `completions` and `man`. A program's command enum
/// takes them in with `#[command(flatten)]`.
#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    Completions(CompletionsArgs),
    Man(ManArgs),
}

impl MetaCommand {
    /// Run the subcommand for the program `C`.
    pub fn run<C: CommandFactory>(self) -> anyhow::Result<i32> {
        match self {
            MetaCommand::Completions(args) => cmd_completions::<C>(args),
            MetaCommand::Man(args) => cmd_man::<C>(args),
        }
    }
}

/// Print a shell completion script
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Print the completion script of the program `C` for a shell.
pub fn cmd_completions<C: CommandFactory>(args: CompletionsArgs) -> anyhow::Result<i32> {
    let mut cmd = command::<C>();
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(exit_codes::OK)
}

/// Print the man page (roff)
#[derive(Debug, Args)]
pub struct ManArgs {}

/// Print the man page of the program `C`.
pub fn cmd_man<C: CommandFactory>(_args: ManArgs) -> anyhow::Result<i32> {
    clap_mangen::Man::new(command::<C>()).render(&mut std::io::stdout())?;
    Ok(exit_codes::OK)
}

/// Run a program: parse its command line into `C`, run `dispatch` on it, and give the exit
/// code to end with.
///
/// A command line clap refuses prints clap's message and ends with the bad-input code
/// (`--help` and `--version` end with success); an error of `dispatch` goes through
/// [`finish`].
pub fn run<C: Parser>(dispatch: impl FnOnce(C) -> anyhow::Result<i32>) -> i32 {
    let mut cmd = command::<C>();
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| C::from_arg_matches_mut(&mut matches))
        .map_err(|e| e.format(&mut cmd));
    match parsed {
        Ok(cli) => finish(cmd.get_name(), dispatch(cli)),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                exit_codes::BAD_INPUT
            } else {
                exit_codes::OK
            }
        }
    }
}

/// Print an error once, chain included, as `PROG: error: …`, and pick the exit code.
///
/// A broken pipe on stdout is a success: the reader went away.
pub fn finish(prog: &str, result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = konductor_core::error::exit_code_for(e.chain());
            if code == exit_codes::OK {
                return code;
            }
            eprintln!("{prog}: error: {e:#}");
            code
        }
    }
}
