use std::io::Write as _;

use clap::{Args, ValueEnum};
use konductor_core::ops::{
    set_step_state, set_step_state_from_checkout, set_step_state_reading_tags, tick,
    SetStateOptions, TickOptions, DEFAULT_HORIZON,
};
use konductor_core::store::{CacheLocation, Checkout, Identity};
use konductor_core::tag::JobState;

/// Record a job's state (`started`, `success`, `failure`) as a state tag
///
/// Pushes `<triggering-tag>=<state>` as an annotated tag on the train's commit. Works with
/// no checkout: it reads the trigger's tags from the remote (never the commit's files) and
/// pushes the one tag object. Repeating a call is a no-op. A report on a job that already ended is the
/// CI's re-run of it (its Re-run button): recorded as `<triggering-tag>=rerun.<k>=<state>`,
/// and the newest re-run's outcome counts.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # first thing in the job\n  locomotive set-step-state --triggering-tag \"$TAG\" --state-name started\n  # last thing, when it passed\n  locomotive set-step-state --triggering-tag \"$TAG\" --state-name success \\\n      --info-string \"job_url:$JOB_URL\""
)]
pub struct SetStepStateArgs {
    /// The state to record
    #[arg(long, value_enum, value_name = "STATE")]
    pub state_name: StateName,
    /// The trigger tag that started this job (`release=N.P=<step>.<job>`)
    #[arg(long, value_name = "TAG")]
    pub triggering_tag: String,
    /// Free text for the tag message, e.g. `job_url:https://…` (repeatable)
    #[arg(long, value_name = "TEXT")]
    pub info_string: Vec<String>,
    /// The commit the job ran on; refused unless it is the trigger's commit
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
    /// After a terminal state, advance the train at once (also: KONDUCTOR_TICK=1)
    #[arg(long, env = "KONDUCTOR_TICK", value_parser = clap::builder::FalseyValueParser::new())]
    pub tick: bool,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateName {
    Started,
    Success,
    Failure,
}

pub fn cmd_set_step_state(args: SetStepStateArgs) -> anyhow::Result<i32> {
    let state = match args.state_name {
        StateName::Started => JobState::Started,
        StateName::Success => JobState::Success,
        StateName::Failure => JobState::Failure,
    };
    // Before any other libgit2 call: no CA bundle to parse when the remote speaks no TLS
    // (a third of a report's time over a path). With no `--remote` (the checkout's
    // `origin`), reading git's config initialises libgit2 the usual way.
    if let Some(spec) = args.remote.remote.as_deref().map(str::trim) {
        konductor_core::git::tls::init_libgit2_for(spec);
    }
    let who = Identity::from_env("locomotive");
    let now = konductor_core::time::now();
    let opts = SetStateOptions {
        triggering_tag: args.triggering_tag.clone(),
        state,
        info: args.info_string.clone(),
        sha: args.sha.clone(),
    };
    // Inside the job's checkout: one push, no fetch, when the checkout has the trigger
    // and its commit; else (or on any doubt) the temporary repository below.
    let keys_readable = [&args.remote.signing_key, &args.remote.allowed_signers]
        .iter()
        .all(|p| p.as_ref().is_none_or(|p| p.is_file()));
    let quick = match Checkout::discover() {
        Some(checkout) if keys_readable => set_step_state_from_checkout(
            &args.remote.remote()?,
            &checkout,
            args.remote.signing_key.as_deref(),
            args.remote.allowed_signers.as_deref(),
            &opts,
            &who,
            now,
        )?,
        // No checkout: the tags are read natively (no `git fetch`), then one push.
        None if keys_readable => match args.remote.remote() {
            Ok(remote) => set_step_state_reading_tags(
                &remote,
                args.remote.signing_key.as_deref(),
                args.remote.allowed_signers.as_deref(),
                &opts,
                &who,
                now,
            )?,
            Err(_) => None,
        },
        _ => None,
    };
    let res = match quick {
        Some(res) => res,
        None => {
            let store = args.remote.open_at(CacheLocation::Temporary)?;
            set_step_state(&store, &opts, &who, now)?
        }
    };
    writeln!(std::io::stdout().lock(), "{}: {}", res.tag, res.outcome)?;
    if args.tick && state.is_terminal() {
        let store = args.remote.open_at(CacheLocation::Auto)?;
        let train = res.train.parse().ok();
        let opts = TickOptions {
            train,
            target: None,
            sdd: None,
            dry_run: false,
            horizon: DEFAULT_HORIZON,
        };
        let report = tick(&store, &opts, &who, konductor_core::time::now())?;
        for t in &report.trains {
            for a in &t.actions {
                writeln!(
                    std::io::stdout().lock(),
                    "train {}: trigger {}: {}",
                    t.train,
                    a.tag,
                    a.outcome
                )?;
                if let Some(e) = &a.error {
                    eprintln!("locomotive: error: train {}: {e}", t.train);
                }
            }
            if let Some(e) = &t.error {
                eprintln!("locomotive: error: train {}: {e}", t.train);
            }
        }
        if let Some(e) = report.stopped {
            return Err(e.into());
        }
        return Ok(report.exit_code());
    }
    Ok(0)
}
