//! The manifest folder `locomotive publish-manifests` commits: what git can hold as it is,
//! and what it cannot.
//!
//! [`scan`] walks the folder without touching git and decides, for every path, what goes
//! into the deploy commit:
//!
//! - a regular file: a blob, mode `100755` when its owner may execute it (as `git add`
//!   decides), else `100644`; any name, UTF-8 or not (a git tree holds bytes);
//! - a folder: a tree; a folder with nothing to publish in it is left out and reported in
//!   [`Scan::empty_dirs`] (git has no empty trees in a commit, and Argo CD finds no manifest
//!   in one);
//! - a symlink whose target stays inside the folder: the target's content, as a regular
//!   file (or a folder), never a symlink entry, so that Argo CD, Kustomize and Helm render
//!   exactly what the folder showed whatever their own rules for symlinks are;
//! - `.git`: skipped, as git does.
//!
//! Everything else is a [`Problem`], and one problem refuses the whole publish: a symlink
//! that leads outside the folder, a dangling one, a loop, a fifo, a socket, a device, a
//! name git refuses. Dropping any of them silently would let Argo CD prune a resource.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What to commit, and what cannot be.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every non-empty folder, children before their parents; the last is the root. A
    /// folder reached twice (through a symlink) is listed once.
    pub dirs: Vec<Dir>,
    /// Folders left out because nothing in them can be published, as shown paths.
    pub empty_dirs: Vec<String>,
    /// What cannot be published, in path order.
    pub problems: Vec<Problem>,
    /// The root folder's index, if anything in it can be published.
    root: Option<usize>,
}

/// One folder: its entries sorted by name (bytes).
#[derive(Debug, Default)]
pub struct Dir {
    /// The entries.
    pub entries: Vec<(Vec<u8>, Entry)>,
}

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file to read (the symlink's target, for a symlink).
    File {
        /// Where its content is.
        path: PathBuf,
        /// Committed as `100755`.
        executable: bool,
    },
    /// A folder: an index into [`Scan::dirs`].
    Dir(usize),
}

/// A path that cannot be published, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The path relative to the manifest folder, escaped for display.
    pub path: String,
    /// Why.
    pub why: String,
}

impl Scan {
    /// The root folder, if anything in it can be published.
    pub fn root(&self) -> Option<usize> {
        self.root
    }
}

impl Scan {
    /// The refusal to publish, listing every problem; `Ok` when there is none.
    pub fn check(&self, dir: &Path, tag: &str) -> Result<()> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let n = self.problems.len();
        let mut msg = format!(
            "cannot publish `{}`: {n} path{} cannot be committed as {}; nothing was published and `{tag}` was not moved",
            dir.display(),
            if n == 1 { "" } else { "s" },
            if n == 1 { "it is" } else { "they are" },
        );
        for p in &self.problems {
            msg.push_str(&format!("\n  `{}`: {}", p.path, p.why));
        }
        msg.push_str(
            "\nhint: replace a symlink that leads outside the folder by a copy of its target, and remove what is not a manifest",
        );
        Err(Error::input(msg))
    }
}

/// Walk `dir` (see the module docs). Fails only when `dir` itself cannot be read.
pub fn scan(dir: &Path) -> Result<Scan> {
    let root = fs::canonicalize(dir).map_err(|e| Error::Io {
        what: format!("cannot read manifest directory `{}`", dir.display()),
        source: e,
    })?;
    let mut w = Walker {
        root: root.clone(),
        scan: Scan::default(),
        memo: HashMap::new(),
    };
    let mut stack = vec![root.clone()];
    let top = w.dir(&root, Path::new(""), &mut stack)?;
    w.scan.root = top;
    w.scan.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(w.scan)
}

struct Walker {
    /// The manifest folder, canonical.
    root: PathBuf,
    scan: Scan,
    /// Canonical folder → its index (None: nothing to publish in it).
    memo: HashMap<PathBuf, Option<usize>>,
}

impl Walker {
    /// Walk the canonical folder `real`, shown as `shown`; `stack` holds the canonical
    /// folders being walked, `real` included.
    fn dir(
        &mut self,
        real: &Path,
        shown: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Option<usize>> {
        let read = fs::read_dir(real).map_err(|e| Error::Io {
            what: format!("cannot read `{}`", real.display()),
            source: e,
        });
        let mut names: Vec<std::ffi::OsString> = match read {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
            Err(e) if shown.as_os_str().is_empty() => return Err(e),
            Err(e) => {
                self.problem(shown, format!("cannot read this folder: {}", io_cause(&e)));
                return Ok(None);
            }
        };
        names.sort_by(|a, b| bytes(a).cmp(bytes(b)));
        let mut entries = Vec::new();
        for name in names {
            if name == ".git" {
                continue;
            }
            let path = real.join(&name);
            let shown_path = shown.join(&name);
            if let Some(why) = refused_name(bytes(&name)) {
                self.problem(&shown_path, why);
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.problem(&shown_path, format!("cannot read: {e}"));
                    continue;
                }
            };
            let ft = meta.file_type();
            let entry = if ft.is_symlink() {
                self.symlink(&path, &shown_path, stack)?
            } else if ft.is_dir() {
                self.subdir(path, &shown_path, stack)?
            } else if ft.is_file() {
                Some(Entry::File {
                    path,
                    executable: executable(&meta),
                })
            } else {
                self.problem(&shown_path, format!("{}; only regular files, folders and symlinks inside the folder can be published", special(&ft)));
                None
            };
            if let Some(entry) = entry {
                entries.push((bytes(&name).to_vec(), entry));
            }
        }
        if entries.is_empty() {
            if !shown.as_os_str().is_empty() {
                self.scan.empty_dirs.push(format!("{}/", show(shown)));
            }
            return Ok(None);
        }
        self.scan.dirs.push(Dir { entries });
        Ok(Some(self.scan.dirs.len() - 1))
    }

    /// A folder reached at `real` (canonical).
    fn subdir(
        &mut self,
        real: PathBuf,
        shown: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Option<Entry>> {
        if let Some(done) = self.memo.get(&real) {
            return Ok(done.map(Entry::Dir));
        }
        stack.push(real.clone());
        let id = self.dir(&real, shown, stack)?;
        stack.pop();
        self.memo.insert(real, id);
        Ok(id.map(Entry::Dir))
    }

    fn symlink(
        &mut self,
        path: &Path,
        shown: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Option<Entry>> {
        let target = fs::read_link(path)
            .map(|t| show(&t))
            .unwrap_or_else(|_| "?".into());
        let real = match fs::canonicalize(path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problem(
                    shown,
                    format!("symlink to `{target}`, which does not exist (dangling)"),
                );
                return Ok(None);
            }
            Err(e) if is_loop(&e) => {
                self.problem(shown, format!("symlink to `{target}` is a loop"));
                return Ok(None);
            }
            Err(e) => {
                self.problem(
                    shown,
                    format!("symlink to `{target}` cannot be resolved: {e}"),
                );
                return Ok(None);
            }
        };
        if !real.starts_with(&self.root) {
            self.problem(
                shown,
                format!(
                    "symlink to `{target}` leads outside the manifest folder (to `{}`)",
                    show(&real)
                ),
            );
            return Ok(None);
        }
        let meta = match fs::metadata(&real) {
            Ok(m) => m,
            Err(e) => {
                self.problem(shown, format!("symlink to `{target}` cannot be read: {e}"));
                return Ok(None);
            }
        };
        if meta.is_file() {
            Ok(Some(Entry::File {
                executable: executable(&meta),
                path: real,
            }))
        } else if meta.is_dir() {
            if stack.contains(&real) {
                let inside = real.strip_prefix(&self.root).unwrap_or(&real);
                let inside = if inside.as_os_str().is_empty() {
                    ".".to_string()
                } else {
                    show(inside)
                };
                self.problem(
                    shown,
                    format!("symlink to `{target}` is a loop: it leads back to `{inside}`, a folder that contains it"),
                );
                return Ok(None);
            }
            self.subdir(real, shown, stack)
        } else {
            self.problem(
                shown,
                format!(
                    "symlink to `{target}`, {}; only regular files, folders and symlinks inside the folder can be published",
                    special(&meta.file_type())
                ),
            );
            Ok(None)
        }
    }

    fn problem(&mut self, shown: &Path, why: String) {
        self.scan.problems.push(Problem {
            path: show(shown),
            why,
        });
    }
}

fn io_cause(e: &Error) -> String {
    match e {
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

#[cfg(unix)]
fn bytes(s: &std::ffi::OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes()
}

#[cfg(not(unix))]
fn bytes(s: &std::ffi::OsStr) -> &[u8] {
    s.to_str().map(str::as_bytes).unwrap_or(b"?")
}

#[cfg(unix)]
fn executable(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    // As git decides: the owner's execute bit.
    m.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn executable(_: &fs::Metadata) -> bool {
    false
}

fn is_loop(e: &std::io::Error) -> bool {
    // ELOOP: 40 on Linux, 62 on the BSDs and macOS.
    let eloop = if cfg!(target_os = "linux") { 40 } else { 62 };
    e.raw_os_error() == Some(eloop)
}

#[cfg(unix)]
fn special(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a named pipe (fifo)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special(_: &fs::FileType) -> &'static str {
    "not a regular file"
}

/// Why git refuses `name` as a path component, if it does (`.git` itself is skipped
/// before this is asked). git refuses every spelling of `.git` that some file system
/// reads as `.git`: other cases, trailing dots or spaces, the NTFS short name `git~1`.
pub fn refused_name(name: &[u8]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let mut trimmed: &[u8] = &lower;
    while let [rest @ .., b'.' | b' '] = trimmed {
        trimmed = rest;
    }
    (trimmed == b".git" || trimmed == b"git~1").then(|| {
        format!(
            "git refuses a path named `{}` (it reads as `.git`)",
            show_bytes(name)
        )
    })
}

/// A path for messages: UTF-8 as is, other bytes as `\xNN`, control characters escaped,
/// so that no name can break a message into lines.
pub fn show(p: &Path) -> String {
    show_bytes(bytes(p.as_os_str()))
}

fn show_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '`' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn paths(s: &Scan) -> Vec<(String, String)> {
        s.problems
            .iter()
            .map(|p| (p.path.clone(), p.why.clone()))
            .collect()
    }

    #[test]
    fn executable_bit_follows_the_owner_execute_bit() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(d.path().join("run.sh"), fs::Permissions::from_mode(0o744)).unwrap();
        fs::write(d.path().join("a.yaml"), "a: 1\n").unwrap();
        fs::set_permissions(d.path().join("a.yaml"), fs::Permissions::from_mode(0o611)).unwrap();
        let s = scan(d.path()).unwrap();
        assert!(s.problems.is_empty());
        let root = &s.dirs[s.root().unwrap()];
        let modes: Vec<(&[u8], bool)> = root
            .entries
            .iter()
            .map(|(n, e)| match e {
                Entry::File { executable, .. } => (n.as_slice(), *executable),
                Entry::Dir(_) => panic!("no folder here"),
            })
            .collect();
        assert_eq!(modes, vec![(&b"a.yaml"[..], false), (&b"run.sh"[..], true)]);
    }

    #[test]
    fn every_unpublishable_path_is_listed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "x").unwrap();
        let r = d.path();
        fs::write(r.join("ok.yaml"), "a: 1\n").unwrap();
        symlink(outside.path().join("secret"), r.join("out")).unwrap();
        symlink("nope.yaml", r.join("dangling")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        fs::create_dir(r.join("sub")).unwrap();
        symlink("..", r.join("sub/up")).unwrap();
        fs::write(r.join("sub/x.yaml"), "x: 1\n").unwrap();
        symlink(".GIT", r.join(".GIT")).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(r.join("sock")).unwrap();
        let s = scan(r).unwrap();
        let got = paths(&s);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            vec![".GIT", "dangling", "loop1", "loop2", "out", "sock", "sub/up"],
            "{got:?}"
        );
        assert!(got[1].1.contains("dangling"), "{got:?}");
        assert!(got[2].1.contains("loop"), "{got:?}");
        assert!(got[4].1.contains("outside the manifest folder"), "{got:?}");
        assert!(got[5].1.starts_with("a socket"), "{got:?}");
        assert!(got[6].1.contains("leads back to `.`"), "{got:?}");
        let err = s.check(r, "staging-k8s").unwrap_err().to_string();
        assert!(err.contains("7 paths cannot be committed"), "{err}");
        assert!(err.contains("`staging-k8s` was not moved"), "{err}");
    }

    #[test]
    fn symlinks_inside_the_folder_are_their_targets() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir(r.join("base")).unwrap();
        fs::write(r.join("base/svc.yaml"), "svc: 1\n").unwrap();
        symlink("base", r.join("overlay")).unwrap();
        symlink("base/svc.yaml", r.join("svc.yaml")).unwrap();
        let s = scan(r).unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let root = &s.dirs[s.root().unwrap()];
        let names: Vec<&[u8]> = root.entries.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, vec![&b"base"[..], b"overlay", b"svc.yaml"]);
        // The folder reached twice is one tree.
        assert_eq!(root.entries[0].1, root.entries[1].1);
        assert!(
            matches!(&root.entries[2].1, Entry::File { path, .. } if path.ends_with("base/svc.yaml"))
        );
    }

    #[test]
    fn a_lattice_of_folder_symlinks_is_walked_once_per_folder() {
        // Each level links twice to the next: 2^30 paths, 30 folders.
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for i in 0..30 {
            fs::create_dir(r.join(format!("l{i}"))).unwrap();
        }
        fs::write(r.join("l29/x.yaml"), "x\n").unwrap();
        for i in 0..29 {
            symlink(format!("../l{}", i + 1), r.join(format!("l{i}/a"))).unwrap();
            symlink(format!("../l{}", i + 1), r.join(format!("l{i}/b"))).unwrap();
        }
        let s = scan(r).unwrap();
        assert!(s.problems.is_empty());
        assert_eq!(s.dirs.len(), 31);
    }

    #[test]
    fn empty_folders_are_reported_not_refused() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::create_dir(r.join("c")).unwrap();
        fs::write(r.join("c/x.yaml"), "x\n").unwrap();
        let s = scan(r).unwrap();
        assert!(s.problems.is_empty());
        assert_eq!(s.empty_dirs, vec!["a/b/", "a/"]);
    }

    #[test]
    fn non_utf8_and_control_names_are_kept_and_shown_escaped() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9\n.yaml");
        fs::write(r.join(name), "x\n").unwrap();
        let s = scan(r).unwrap();
        assert!(s.problems.is_empty());
        assert_eq!(s.dirs[0].entries[0].0, b"caf\xe9\n.yaml");
        assert_eq!(show(Path::new(name)), "caf\\xe9\\n.yaml");
    }

    #[test]
    fn git_spellings_of_dot_git_are_refused() {
        for n in [".GIT", ".git.", ".Git ", "GIT~1"] {
            assert!(refused_name(n.as_bytes()).is_some(), "{n}");
        }
        for n in [".gitignore", "git", ".git-x", "a.git"] {
            assert!(refused_name(n.as_bytes()).is_none(), "{n}");
        }
    }
}
