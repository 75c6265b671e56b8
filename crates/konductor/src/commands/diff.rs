use clap::Args;
use konductor_core::model::diff::{Relation, DEFAULT_LIMIT};
use konductor_core::ops::diff::DiffReport;

use crate::out;

/// Show what B brings over A: commits, pull requests, changed files
///
/// A and B are trains (`N.P`) or environments (what their deploy tag says runs there):
/// `konductor diff production staging` lists what staging has that production lacks.
/// Files matching a step's `if_changed` are flagged with the gate they trigger. Only
/// commits and trees are fetched, never file contents. `--json` prints one object
/// (docs/status-json.md); see docs/diff.md.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  # what train 4.0 brings over 3.0\n  konductor diff 3.0 4.0\n  # what is waiting to reach production\n  konductor diff production staging\n  # every commit, as JSON\n  konductor diff 3.0 4.0 --limit 100000 --json"
)]
pub struct DiffArgs {
    /// The older end: a train (`N.P`) or an environment
    #[arg(value_name = "A")]
    pub from: String,
    /// The newer end: a train (`N.P`) or an environment
    #[arg(value_name = "B")]
    pub to: String,
    /// List at most this many commits, pull requests and files (the totals are always given)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
    pub limit: usize,
    #[command(flatten)]
    pub remote: konductor_cli::RemoteArgs,
    #[command(flatten)]
    pub output: konductor_cli::OutputArgs,
}

pub fn cmd_diff(args: DiffArgs) -> anyhow::Result<i32> {
    let store = args.remote.open()?;
    let r = konductor_core::ops::diff::diff(&store, &args.from, &args.to, args.limit)?;
    if args.output.json {
        out!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        out!("{}", render(&r));
    }
    Ok(0)
}

fn more(n: usize, what: &str) -> String {
    format!("  … {n} more {what} (raise `--limit` or use `--json --limit N`)\n")
}

/// The text of a diff report.
pub fn render(r: &DiffReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let (a, b) = (r.from.describe(), r.to.describe());
    let short = |c: &str| c.chars().take(10).collect::<String>();
    let _ = writeln!(
        s,
        "{b} ({}) over {a} ({}):",
        short(&r.to.commit),
        short(&r.from.commit)
    );
    match r.relation {
        Relation::Same => {
            let _ = writeln!(s, "  the same commit: nothing to list");
            return s;
        }
        Relation::Behind => {
            let _ = writeln!(
                s,
                "  {b} is older than {a}: it brings no commit {a} lacks (swap them: `konductor diff {} {}`)",
                r.to.spec, r.from.spec
            );
        }
        Relation::Diverged => {
            let _ = writeln!(
                s,
                "  note: {a} has commits {b} lacks (their histories diverged); listed: what {b} has that {a} lacks"
            );
        }
        Relation::Unrelated => {
            let _ = writeln!(
                s,
                "  note: {a} and {b} share no history; listed: every commit of {b}"
            );
        }
        Relation::Ahead => {}
    }
    let _ = writeln!(s, "\ncommits ({}):", r.commits_total);
    for c in &r.commits {
        let _ = writeln!(
            s,
            "  {}  {}  {}  {}",
            short(&c.sha),
            konductor_core::time::rfc3339(c.time),
            c.author,
            c.subject
        );
    }
    if r.commits_total > r.commits.len() {
        s.push_str(&more(r.commits_total - r.commits.len(), "commits"));
    }
    let _ = writeln!(s, "\npull requests ({}):", r.pull_requests_total);
    for p in &r.pull_requests {
        let id = match &p.project {
            Some(proj) => format!("{proj}!{}", p.number),
            None => format!("#{}", p.number),
        };
        let _ = writeln!(s, "  {id}  {}", p.title);
    }
    if r.pull_requests_total > r.pull_requests.len() {
        s.push_str(&more(
            r.pull_requests_total - r.pull_requests.len(),
            "pull requests",
        ));
    }
    let _ = writeln!(s, "\nfiles ({}):", r.files_total);
    for f in &r.files {
        let path = match &f.from {
            Some(old) => format!("{old} → {}", f.path),
            None => f.path.clone(),
        };
        let gates = if f.gates.is_empty() {
            String::new()
        } else {
            format!("  [triggers {}]", f.gates.join(", "))
        };
        let _ = writeln!(s, "  {:<9} {path}{gates}", f.kind.as_str());
    }
    if r.files_total > r.files.len() {
        s.push_str(&more(r.files_total - r.files.len(), "files"));
    }
    if !r.fetch.filtered {
        let _ = writeln!(
            s,
            "\nnote: the server ignored the blob filter (`uploadpack.allowFilter`); file contents were fetched too"
        );
    }
    s.trim_end().to_string()
}
