use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Print a shell completion script
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn cmd_completions(args: CompletionsArgs) -> anyhow::Result<i32> {
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "locomotive", &mut std::io::stdout());
    Ok(0)
}

/// Print the man page (roff)
#[derive(Debug, Args)]
pub struct ManArgs {}

pub fn cmd_man(_args: ManArgs) -> anyhow::Result<i32> {
    let cmd = crate::cli::Cli::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
    Ok(0)
}
