//! What is in a train: the commits, pull requests and changed files between two commits,
//! as pure functions over what git printed (`konductor diff`, `status --train`, the board,
//! notifications). No git here: [`crate::git::store`] fetches the range and hands over its
//! commits and its `git diff-tree` output; [`crate::ops::diff`] resolves trains and
//! environments.

use serde::Serialize;

use crate::model::tag::TrainId;
use crate::model::train::message_field;

/// How many commits (and pull requests, and files) `konductor diff` lists by default.
pub const DEFAULT_LIMIT: usize = 200;

/// One commit of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// The full id.
    pub sha: String,
    /// The first line of the message.
    pub subject: String,
    /// The author's name.
    pub author: String,
    /// The author's email.
    pub email: String,
    /// When it was authored, seconds since the epoch.
    pub time: i64,
    /// The parents' ids.
    #[serde(skip)]
    pub parents: Vec<String>,
    /// The rest of the message (where GitLab writes `See merge request …`).
    #[serde(skip)]
    pub body: String,
}

/// Field and record separators of [`LOG_FORMAT`].
const FS: char = '\u{1f}';
const RS: char = '\u{1e}';

/// The `git log --format` that [`parse_log`] reads.
pub const LOG_FORMAT: &str = "%H%x1f%an%x1f%ae%x1f%at%x1f%P%x1f%s%x1f%b%x1e";

/// The commits of `git log --format=LOG_FORMAT` output, newest first as git printed them.
/// Records that do not have every field are skipped.
pub fn parse_log(out: &str) -> Vec<Commit> {
    out.split(RS)
        .filter_map(|rec| {
            let rec = rec.trim_start_matches('\n');
            let mut f = rec.splitn(7, FS);
            let sha = f.next()?.trim().to_string();
            if sha.len() < 40 {
                return None;
            }
            let author = f.next()?.to_string();
            let email = f.next()?.to_string();
            let time = f.next()?.trim().parse().unwrap_or(0);
            let parents = f.next()?.split_whitespace().map(str::to_string).collect();
            let subject = f.next()?.to_string();
            let body = f.next().unwrap_or("").trim_end().to_string();
            Some(Commit {
                sha,
                subject,
                author,
                email,
                time,
                parents,
                body,
            })
        })
        .collect()
}

/// How a pull request was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrKind {
    /// GitHub's merge commit: `Merge pull request #N from owner/branch`.
    Merge,
    /// A squash or rebase merge whose subject ends with `(#N)`.
    Squash,
    /// GitLab's merge commit: a body line `See merge request group/project!N`.
    MergeRequest,
}

/// A pull (or merge) request found in a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// GitLab's `group/project` of a merge request, when the message names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Its title, as the commit message gives it.
    pub title: String,
    /// The commit that brought it.
    pub commit: String,
    /// How it was recognised.
    pub kind: PrKind,
}

/// The pull request a commit message names, if any: `Merge pull request #N from …`
/// (title: the body's first line), a subject ending with `(#N)` (title: the subject
/// without it), or a body line `See merge request group/project!N` (title: the body's
/// first other line, else the subject).
pub fn pull_request(subject: &str, body: &str) -> Option<(u64, Option<String>, String, PrKind)> {
    let first_body_line = |skip: &dyn Fn(&str) -> bool| {
        body.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !skip(l))
            .map(str::to_string)
    };
    if let Some(rest) = subject.trim().strip_prefix("Merge pull request #") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let (Ok(n), true) = (
            digits.parse::<u64>(),
            rest[digits.len()..].starts_with(" from "),
        ) {
            let title = first_body_line(&|_| false).unwrap_or_else(|| subject.trim().to_string());
            return Some((n, None, title, PrKind::Merge));
        }
    }
    for line in body.lines().rev() {
        let Some(rest) = line.trim().strip_prefix("See merge request ") else {
            continue;
        };
        let Some((project, num)) = rest.trim().rsplit_once('!') else {
            continue;
        };
        let Ok(n) = num.parse::<u64>() else { continue };
        let project = (!project.is_empty() && !project.contains(char::is_whitespace))
            .then(|| project.to_string());
        let title = first_body_line(&|l| l.starts_with("See merge request "))
            .unwrap_or_else(|| subject.trim().to_string());
        return Some((n, project, title, PrKind::MergeRequest));
    }
    let s = subject.trim_end();
    if let Some(inner) = s.strip_suffix(')') {
        if let Some((title, num)) = inner.rsplit_once("(#") {
            if let Ok(n) = num.parse::<u64>() {
                if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                    return Some((n, None, title.trim_end().to_string(), PrKind::Squash));
                }
            }
        }
    }
    None
}

/// The pull requests of `commits`, in their order, each once (a squash commit and a
/// later merge of the same number count once: the first seen wins).
pub fn pull_requests(commits: &[Commit]) -> Vec<PullRequest> {
    let mut out: Vec<PullRequest> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in commits {
        if let Some((number, project, title, kind)) = pull_request(&c.subject, &c.body) {
            if !seen.insert((number, project.clone())) {
                continue;
            }
            out.push(PullRequest {
                number,
                project,
                title,
                commit: c.sha.clone(),
                kind,
            });
        }
    }
    out
}

/// The kind of change of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// New.
    Added,
    /// Changed in place.
    Modified,
    /// Removed.
    Deleted,
    /// Moved, content unchanged (found from trees alone: same blob id).
    Renamed,
    /// Its type changed (a file became a symlink, …).
    TypeChanged,
}

impl ChangeKind {
    /// The word used in text output.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
            ChangeKind::TypeChanged => "type-changed",
        }
    }
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The path (the new one for a rename).
    pub path: String,
    /// The old path of a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// What happened to it.
    pub kind: ChangeKind,
    /// The steps whose `if_changed` it matches: the gates it will trigger.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
}

/// The files of `git diff-tree -r -z --name-status` output. Unknown status letters
/// count as modified.
pub fn parse_name_status(out: &[u8]) -> Vec<FileChange> {
    let mut fields = out
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut files = Vec::new();
    while let Some(status) = fields.next() {
        let status = status.trim().to_string();
        if status.is_empty() {
            continue;
        }
        let Some(path) = fields.next() else { break };
        let (kind, from, path) = match status.as_bytes()[0] {
            b'A' => (ChangeKind::Added, None, path),
            b'D' => (ChangeKind::Deleted, None, path),
            b'T' => (ChangeKind::TypeChanged, None, path),
            b'R' | b'C' => match fields.next() {
                Some(new) if status.starts_with('R') => (ChangeKind::Renamed, Some(path), new),
                Some(new) => (ChangeKind::Added, None, new),
                None => break,
            },
            _ => (ChangeKind::Modified, None, path),
        };
        files.push(FileChange {
            path,
            from,
            kind,
            gates: Vec::new(),
        });
    }
    files
}

/// Mark each file with the steps whose `if_changed` globs match it (its path, or the old
/// path of a rename), given as (step, globs). A bad glob is the graph's error.
pub fn flag_gates(files: &mut [FileChange], steps: &[(String, Vec<String>)]) -> Result<(), String> {
    for (step, globs) in steps {
        for f in files.iter_mut() {
            let paths: Vec<String> = std::iter::once(f.path.clone())
                .chain(f.from.clone())
                .collect();
            if crate::model::changes::first_match(globs, &paths)?.is_some()
                && !f.gates.contains(step)
            {
                f.gates.push(step.clone());
            }
        }
    }
    Ok(())
}

/// What a deploy tag's head commit says: the train deployed and the commit it was built
/// from (`train: N.P`, `source: SHA`, and `rollback: true` on a rollback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// The train.
    #[serde(serialize_with = "display")]
    pub train: TrainId,
    /// The train's commit.
    pub source: String,
    /// Whether the deploy commit is a rollback.
    pub rollback: bool,
}

fn display<S: serde::Serializer>(t: &TrainId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// Read a deploy commit's message (see `ops/deploy.rs`); `None` when it lacks a valid
/// `train:` or a 40-hex `source:`.
pub fn parse_deploy_message(message: &str) -> Option<Deployed> {
    let train = message_field(message, "train")?.parse::<TrainId>().ok()?;
    let source = message_field(message, "source")?;
    if source.len() != 40 || !source.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Deployed {
        train,
        source: source.to_ascii_lowercase(),
        rollback: message_field(message, "rollback") == Some("true"),
    })
}

/// How B's history relates to A's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// The same commit.
    Same,
    /// B descends from A: the commits listed are what B brings.
    Ahead,
    /// B is older than A (an ancestor of it): B brings nothing A lacks.
    Behind,
    /// They share history, but A has commits B lacks (a hotfix branch, a rewrite).
    Diverged,
    /// No common history at all: every commit of B is listed.
    Unrelated,
}

impl Relation {
    /// The word used in JSON and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Same => "same",
            Relation::Ahead => "ahead",
            Relation::Behind => "behind",
            Relation::Diverged => "diverged",
            Relation::Unrelated => "unrelated",
        }
    }
}

/// The relation of a range's commits (`B` not in `A`) to A: `Ahead` when some commit of
/// the range has A as a parent, `Diverged` when the range stopped at history A shares
/// (`boundaries`: commits of the range whose parents were left out), `Unrelated` when it
/// reached root commits only.
pub fn relation(a: &str, b: &str, range: &[Commit], boundaries: bool) -> Relation {
    if a == b {
        Relation::Same
    } else if range.is_empty() {
        Relation::Behind
    } else if range.iter().any(|c| c.parents.iter().any(|p| p == a)) {
        Relation::Ahead
    } else if boundaries {
        Relation::Diverged
    } else {
        Relation::Unrelated
    }
}

/// A list cut at a limit: the first items and how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounded<T> {
    /// How many there are in all.
    pub total: usize,
    /// The first `limit` of them.
    pub items: Vec<T>,
}

impl<T> Bounded<T> {
    /// The first `limit` items of `all`.
    pub fn new(mut all: Vec<T>, limit: usize) -> Bounded<T> {
        let total = all.len();
        all.truncate(limit);
        Bounded { total, items: all }
    }

    /// How many were left out.
    pub fn more(&self) -> usize {
        self.total - self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn commit(sha: char, subject: &str, body: &str, parents: &[char]) -> Commit {
        Commit {
            sha: sha.to_string().repeat(40),
            subject: subject.into(),
            author: "A".into(),
            email: "a@x".into(),
            time: 1,
            parents: parents.iter().map(|p| p.to_string().repeat(40)).collect(),
            body: body.into(),
        }
    }

    #[test]
    fn pull_requests_come_from_merges_squashes_and_gitlab() {
        assert_eq!(
            pull_request(
                "Merge pull request #12 from acme/fix-login",
                "Fix the login\n"
            ),
            Some((12, None, "Fix the login".into(), PrKind::Merge))
        );
        assert_eq!(
            pull_request("Add flavors (#345)", ""),
            Some((345, None, "Add flavors".into(), PrKind::Squash))
        );
        assert_eq!(
            pull_request(
                "Merge branch 'feat' into 'main'",
                "Speed up the cache\n\nSee merge request group/sub/proj!78"
            ),
            Some((
                78,
                Some("group/sub/proj".into()),
                "Speed up the cache".into(),
                PrKind::MergeRequest
            ))
        );
        for none in [
            "Merge pull request #x from a",
            "Merge pull request #12",
            "fix (#)",
            "fix (#12a)",
            "fix #12",
            "Merge branch 'main'",
            "(#",
        ] {
            assert_eq!(pull_request(none, ""), None, "{none}");
        }
    }

    #[test]
    fn a_pull_request_counts_once() {
        let cs = vec![
            commit('a', "Merge pull request #7 from a/b", "Title", &['b', 'c']),
            commit('c', "Title (#7)", "", &['d']),
            commit('d', "other (#8)", "", &['e']),
        ];
        let prs = pull_requests(&cs);
        assert_eq!(prs.iter().map(|p| p.number).collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(prs[0].commit, "a".repeat(40));
    }

    #[test]
    fn name_status_gives_kinds_and_renames() {
        let out =
            b"M\0src/a.rs\0A\0new.txt\0D\0gone.txt\0R100\0old/x\0new/x\0T\0link\0C100\0a\0b\0";
        let files = parse_name_status(out);
        let kinds: Vec<_> = files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("src/a.rs", ChangeKind::Modified),
                ("new.txt", ChangeKind::Added),
                ("gone.txt", ChangeKind::Deleted),
                ("new/x", ChangeKind::Renamed),
                ("link", ChangeKind::TypeChanged),
                ("b", ChangeKind::Added),
            ]
        );
        assert_eq!(files[3].from.as_deref(), Some("old/x"));
    }

    #[test]
    fn gates_flag_the_files_that_trigger_them() {
        let mut files =
            parse_name_status(b"M\0flavors.yaml\0R100\0k8s/a.yaml\0deploy/a.yaml\0M\0src/x\0");
        let steps = vec![
            ("rebuild".to_string(), vec!["flavors.yaml".to_string()]),
            ("k8s-check".to_string(), vec!["k8s/**".to_string()]),
        ];
        flag_gates(&mut files, &steps).unwrap();
        assert_eq!(files[0].gates, vec!["rebuild"]);
        assert_eq!(
            files[1].gates,
            vec!["k8s-check"],
            "the old path of a rename counts"
        );
        assert!(files[2].gates.is_empty());
        assert!(flag_gates(&mut files, &[("x".into(), vec!["a[".into()])]).is_err());
    }

    #[test]
    fn deploy_messages_name_train_and_source() {
        let src = "ab".repeat(20);
        let m = format!("deploy train 3.1 to prod\n\ntrain: 3.1\nsource: {src}\ntrigger: t\n");
        assert_eq!(
            parse_deploy_message(&m),
            Some(Deployed {
                train: "3.1".parse().unwrap(),
                source: src.clone(),
                rollback: false
            })
        );
        let r = format!("rollback prod to 3.0\n\ntrain: 3.0\nsource: {src}\nrollback: true\n");
        assert!(parse_deploy_message(&r).unwrap().rollback);
        assert_eq!(
            parse_deploy_message("deploy\n\ntrain: 3.1\nsource: abc\n"),
            None
        );
        assert_eq!(
            parse_deploy_message(&format!("deploy\n\nsource: {src}\n")),
            None
        );
    }

    #[test]
    fn log_records_parse_and_relations_follow() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let log = format!("{b}\u{1f}Ann\u{1f}ann@x\u{1f}100\u{1f}{a}\u{1f}Fix (#3)\u{1f}\u{1e}\n");
        let cs = parse_log(&log);
        assert_eq!(cs.len(), 1);
        assert_eq!((cs[0].author.as_str(), cs[0].time), ("Ann", 100));
        assert_eq!(relation(&a, &b, &cs, true), Relation::Ahead);
        assert_eq!(relation(&a, &a, &[], false), Relation::Same);
        assert_eq!(relation(&a, &b, &[], false), Relation::Behind);
        let other = parse_log(&log.replace(&a, &"c".repeat(40)));
        assert_eq!(relation(&a, &b, &other, true), Relation::Diverged);
        assert_eq!(relation(&a, &b, &other, false), Relation::Unrelated);
    }

    proptest! {
        #[test]
        fn bounded_keeps_the_total(n in 0usize..500, limit in 0usize..600) {
            let b = Bounded::new((0..n).collect::<Vec<_>>(), limit);
            prop_assert_eq!(b.total, n);
            prop_assert_eq!(b.items.len(), n.min(limit));
            prop_assert_eq!(b.more() + b.items.len(), n);
        }

        #[test]
        fn pull_request_never_panics(s in ".{0,40}", body in ".{0,40}") {
            let _ = pull_request(&s, &body);
        }

        #[test]
        fn squash_numbers_round_trip(n in 0u64..1_000_000, title in "[a-z ]{1,20}") {
            let got = pull_request(&format!("{title} (#{n})"), "");
            prop_assert_eq!(got.map(|g| g.0), Some(n));
        }
    }
}
