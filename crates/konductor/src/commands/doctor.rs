use std::path::PathBuf;

use clap::Args;
use konductor_core::doctor::{self, DoctorOptions};
use konductor_core::error::Error;
use konductor_core::exit_codes;

use crate::out;

/// Cross-check the step graph against the repository's CI configuration
///
/// For every step that runs as a job: which CircleCI jobs, GitHub workflow jobs and Argo
/// Events sensors its trigger tags start; whether one of them also runs for state or
/// control tags (a loop); whether each reports `started`, `success` and `failure` with
/// `locomotive`; and whether the CircleCI jobs it requires have tag filters. Also lists
/// jobs whose tag filters match no step.
///
/// Reads `<repo>/sdd.yaml`, `<repo>/.circleci/config.yml`, `<repo>/.github/workflows/`
/// and every Sensor and WorkflowTemplate under `<repo>` (but `target/`, `.git/`,
/// `node_modules/`). Exits 0 when clean, 6 when a problem is found, 2 when an input file
/// cannot be read or understood. See docs/integrations.md.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The step graph [default: `<repo>/sdd.yaml`]
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    /// The repository to check
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// The CircleCI config [default: `<repo>/.circleci/config.yml`, if it exists]
    #[arg(long, value_name = "FILE", help_heading = "Inputs")]
    pub circleci: Option<PathBuf>,
    /// The GitHub workflows [default: `<repo>/.github/workflows`, if it exists]
    #[arg(long, value_name = "DIR", help_heading = "Inputs")]
    pub github_dir: Option<PathBuf>,
    /// Where to look for Argo Sensors and WorkflowTemplates, recursively [default: `<repo>`]
    #[arg(long, value_name = "DIR", help_heading = "Inputs")]
    pub argo_dir: Option<PathBuf>,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_doctor(args: DoctorArgs) -> anyhow::Result<i32> {
    let opts = DoctorOptions {
        repo: args.repo,
        sdd: args.sdd,
        circleci: args.circleci,
        github_dir: args.github_dir,
        argo_dir: args.argo_dir,
    };
    let report = doctor::load(&opts)
        .and_then(|inputs| doctor::check(&inputs))
        .map_err(Error::from)?;
    if args.output.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        use std::io::Write as _;
        write!(std::io::stdout().lock(), "{}", report.render_text())?;
    }
    Ok(if report.is_clean() {
        exit_codes::OK
    } else {
        exit_codes::CHECK_FAILED
    })
}
