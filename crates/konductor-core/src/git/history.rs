//! The history between two commits, fetched as little as possible: commits and trees, no
//! file contents, and only the commits of the range (`konductor diff`).
//!
//! The cache holds each train commit alone (depth 1). A range is fetched into a scratch
//! repository beside the cache, deleted afterwards, so the cache's shallow boundaries
//! never mix with a range's:
//!
//! 1. `git fetch --depth=1 --filter=blob:none origin A`: A and its trees;
//! 2. `git fetch --filter=blob:none --shallow-exclude=REF_OF_A origin B`: the commits
//!    of B that A does not have, each with its new trees, cut where they reach A's
//!    history (the server computes the range; protocol v2's `deepen-not`). When B is
//!    older than A the server selects nothing and says so;
//! 3. `git log B ^A` and `git diff-tree -M100% A B`: exact renames only, which trees
//!    alone show, so no file content is ever read.
//!
//! A server without `uploadpack.allowFilter` ignores the filter (git warns, the fetch
//! still works, with file contents); a server refusing `deepen-not`, or an A without a
//! ref, falls back to fetching both histories whole (still without blobs when allowed).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::store::Store;
use crate::model::diff::{parse_log, Commit, LOG_FORMAT};

/// What the history fetch brought.
#[derive(Debug, Clone)]
pub struct History {
    /// The commits of B not in A, newest first (empty when B is older than A).
    pub commits: Vec<Commit>,
    /// Whether the range stopped at history A has (some commit's parents were left out).
    pub boundaries: bool,
    /// `git diff-tree -r -z --name-status -M100% A B`.
    pub name_status: Vec<u8>,
    /// Bytes the scratch repository's objects took: what was fetched.
    pub fetched_bytes: u64,
    /// Whether the server applied the blob filter (else file contents came too).
    pub filtered: bool,
    /// How the range was fetched: `shallow-exclude` or `full`.
    pub method: &'static str,
}

/// A scratch repository, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GONE: [&str; 5] = [
    "not our ref",
    "couldn't find remote ref",
    "no such remote ref",
    "upload-pack: not our",
    "bad object",
];

impl Store {
    /// Fetch what lies between commit `a` and commit `b` (both full ids). `a_ref`, a ref
    /// of the remote pointing at `a` (the train tag), lets the server cut the range;
    /// without it both histories are fetched whole. `what_a`/`what_b` name the ends in
    /// errors (`train 1.0`, `production (train 1.0)`).
    pub fn history(
        &self,
        a: &str,
        a_ref: Option<&str>,
        b: &str,
        what_a: &str,
        what_b: &str,
    ) -> Result<History> {
        let dir = self.cache_dir().join(format!(
            "history-{}-{}.git",
            std::process::id(),
            crate::model::time::now_nanos()
        ));
        let scratch = Scratch(dir.clone());
        let url = self.remote().url.clone();
        self.run_at(&dir, &["init", "--quiet", "--bare"], "")?;
        // One file write rather than a `git config` process per key.
        let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
        let cfg_path = dir.join("config");
        let cfg = std::fs::read_to_string(&cfg_path).unwrap_or_default();
        let cfg = cfg.replace("repositoryformatversion = 0", "repositoryformatversion = 1")
            + &format!(
                "[remote \"origin\"]\n\turl = \"{quoted}\"\n\tpromisor = true\n\tpartialclonefilter = blob:none\n[extensions]\n\tpartialclone = origin\n"
            );
        std::fs::write(&cfg_path, cfg).map_err(|e| Error::Io {
            what: format!("cannot write `{}`", cfg_path.display()),
            source: e,
        })?;
        let mut filtered = true;
        let fetch = |extra: &[&str], commit: &str, what: &str| -> Result<(bool, String)> {
            let mut args = vec![
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--filter=blob:none",
            ];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["origin", commit]);
            let out = self.output_at(&dir, &args)?;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                return Ok((!stderr.contains("filtering not recognized"), stderr));
            }
            if GONE.iter().any(|g| stderr.contains(g)) {
                return Err(Error::input(format!(
                    "commit `{commit}` of {what} is not on `{url}` any more (force-pushed away or collected); its history cannot be read"
                )));
            }
            Ok((false, format!("\u{0}{stderr}")))
        };
        let failed = |r: &(bool, String)| r.1.starts_with('\u{0}');
        let fatal = |r: (bool, String), what: &str| -> Error {
            self.classify(
                r.1.trim_start_matches('\u{0}'),
                &format!("cannot fetch {what} from"),
            )
        };
        let r = fetch(&["--depth=1"], a, what_a)?;
        if failed(&r) {
            return Err(fatal(r, what_a));
        }
        filtered &= r.0;
        let mut method = "shallow-exclude";
        let mut behind = false;
        if a != b {
            let cut = a_ref.map(|r| format!("--shallow-exclude={r}"));
            let r = match &cut {
                Some(c) => fetch(&[c.as_str()], b, what_b)?,
                None => (false, "\u{0}no ref".to_string()),
            };
            if failed(&r) && r.1.contains("no commits selected for shallow requests") {
                // Every commit of B is in A's history: B is older (or the same).
                behind = true;
                let r = fetch(&["--depth=1"], b, what_b)?;
                if failed(&r) {
                    return Err(fatal(r, what_b));
                }
                filtered &= r.0;
            } else if failed(&r) {
                // No ref to cut at, or a server without `deepen-not`: both histories whole.
                method = "full";
                let r = fetch(&["--unshallow"], a, what_a)?;
                if failed(&r) && !r.1.contains("on a complete repository") {
                    return Err(fatal(r, what_a));
                }
                let r = fetch(&[], b, what_b)?;
                if failed(&r) {
                    return Err(fatal(r, what_b));
                }
                filtered &= r.0;
            } else {
                filtered &= r.0;
            }
        }
        let mut commits = if a == b || behind {
            Vec::new()
        } else {
            let range = format!("^{a}");
            let fmt = format!("--format={LOG_FORMAT}");
            let out = self.run_at(&dir, &["log", &fmt, b, &range], "cannot read the history")?;
            parse_log(&String::from_utf8_lossy(&out))
        };
        let shallow: Vec<String> = std::fs::read_to_string(dir.join("shallow"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != a)
            .collect();
        let boundaries = !shallow.is_empty();
        // git hides the parents of a shallow commit; its object still names them.
        for c in commits.iter_mut().filter(|c| shallow.contains(&c.sha)) {
            let raw = self.run_at(
                &dir,
                &["cat-file", "commit", &c.sha],
                "cannot read a commit",
            )?;
            c.parents = String::from_utf8_lossy(&raw)
                .lines()
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.strip_prefix("parent "))
                .map(str::to_string)
                .collect();
        }
        let name_status = self.run_at(
            &dir,
            &["diff-tree", "-r", "-z", "--name-status", "-M100%", a, b],
            "cannot compare the trees",
        )?;
        let fetched_bytes = dir_size(&dir.join("objects"));
        drop(scratch);
        Ok(History {
            commits,
            boundaries,
            name_status,
            fetched_bytes,
            filtered,
            method,
        })
    }

    fn output_at(&self, dir: &Path, args: &[&str]) -> Result<std::process::Output> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.git_command_at(dir, &args)
            // Never fetch a file's content behind our back (renames are exact only).
            .env("GIT_NO_LAZY_FETCH", "1")
            .output()
            .map_err(|e| Error::Remote(format!("cannot run `git` (is it installed?): {e}")))
    }

    fn run_at(&self, dir: &Path, args: &[&str], what: &str) -> Result<Vec<u8>> {
        let out = self.output_at(dir, args)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = if what.is_empty() {
            "cannot prepare a scratch repository for"
        } else {
            what
        };
        Err(self.classify(&stderr, what))
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
