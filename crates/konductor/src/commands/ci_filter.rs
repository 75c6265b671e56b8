use std::path::PathBuf;

use clap::{Args, ValueEnum};
use konductor_core::cifilter::{self, CiSystem};
use konductor_core::error::Error;
use konductor_core::sdd::nearest;

use crate::out;

/// Print the CI tag filter that runs a step's job on its trigger tags only
///
/// CircleCI: one anchored regular expression for `filters.tags.only`. GitHub: two
/// `on.push.tags` patterns, the trigger pattern and a negation of the state tags. The
/// step must be a valid step name and, when an SDD is read (`--sdd`, or `sdd.yaml` in
/// the current directory), a step of it. See docs/integrations.md.
#[derive(Debug, Args)]
pub struct CiFilterArgs {
    /// The step
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// The CI system
    #[arg(long = "for", value_name = "CI")]
    pub ci: CiArg,
    /// The step graph the step must belong to [default: `sdd.yaml`, if it exists]
    #[arg(long, value_name = "FILE")]
    pub sdd: Option<PathBuf>,
    /// Print a configuration snippet to paste instead of the bare filter
    #[arg(long)]
    pub yaml: bool,
}

/// A CI system.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CiArg {
    /// CircleCI: `filters.tags.only`
    Circleci,
    /// GitHub Actions: `on.push.tags`
    Github,
}

impl From<CiArg> for CiSystem {
    fn from(c: CiArg) -> Self {
        match c {
            CiArg::Circleci => CiSystem::Circleci,
            CiArg::Github => CiSystem::Github,
        }
    }
}

pub fn cmd_ci_filter(args: CiFilterArgs) -> anyhow::Result<i32> {
    let step = args.step.as_str();
    konductor_core::tag::validate_step_name(step)
        .map_err(|r| Error::input(format!("invalid step `{}`: {r}", step.escape_debug())))?;
    let sdd_path = args
        .sdd
        .clone()
        .or_else(|| Some(PathBuf::from("sdd.yaml")).filter(|p| p.is_file()));
    if let Some(path) = sdd_path {
        let sdd = super::load_sdd(&path)?;
        let Some(s) = sdd.step(step) else {
            let hint = nearest(step, sdd.steps().iter().map(|s| s.name.as_str()))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(Error::input(format!(
                "unknown step `{step}` in `{}`{hint}",
                path.display()
            ))
            .into());
        };
        let why = if s.is_virtual {
            Some("virtual")
        } else if s.manual {
            Some("a manual gate")
        } else if sdd.dependents(step).is_empty() {
            Some("a final step")
        } else {
            None
        };
        if let Some(why) = why {
            eprintln!(
                "konductor: warning: step `{step}` is {why}: Konductor never pushes its trigger tags"
            );
        }
    }
    let ci = CiSystem::from(args.ci);
    if args.yaml {
        let text =
            cifilter::trigger_filter_yaml(ci, step).map_err(|e| Error::input(e.to_string()))?;
        out!("{}", text.trim_end());
    } else {
        for line in
            cifilter::trigger_filter_lines(ci, step).map_err(|e| Error::input(e.to_string()))?
        {
            out!("{line}");
        }
    }
    Ok(0)
}
