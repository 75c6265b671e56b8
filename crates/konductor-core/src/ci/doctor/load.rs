//! Finding and reading what doctor checks: the SDD, the CircleCI config, the GitHub
//! workflows and the files with Argo Sensors or WorkflowTemplates.

use std::path::{Path, PathBuf};

use super::argo::mentions_argo_kind;
use super::DoctorError;
use crate::model::sdd::Sdd;

/// Directories never searched for Argo manifests.
pub const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

/// Where to find the step graph and the CI configuration.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The repository: the default place of everything below.
    pub repo: PathBuf,
    /// The SDD; `<repo>/sdd.yaml` when `None`.
    pub sdd: Option<PathBuf>,
    /// The CircleCI config; `<repo>/.circleci/config.yml`, if it exists, when `None`.
    pub circleci: Option<PathBuf>,
    /// The GitHub workflows; `<repo>/.github/workflows`, if it exists, when `None`.
    pub github_dir: Option<PathBuf>,
    /// Where to search for Argo manifests (recursively); `<repo>` when `None`.
    pub argo_dir: Option<PathBuf>,
}

/// One file read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path, for messages.
    pub path: String,
    /// The contents.
    pub text: String,
}

impl SourceFile {
    /// A file from its path (for messages) and contents.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// Everything doctor reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The step graph.
    pub sdd: Sdd,
    /// CircleCI configs (zero or one).
    pub circleci: Vec<SourceFile>,
    /// GitHub workflow files.
    pub github: Vec<SourceFile>,
    /// Files with Argo Sensors or WorkflowTemplates.
    pub argo: Vec<SourceFile>,
}

fn shown(p: &Path) -> String {
    p.strip_prefix(".").unwrap_or(p).display().to_string()
}

/// The error for a file or directory that cannot be read.
fn cannot_read(p: &Path) -> impl Fn(std::io::Error) -> DoctorError + '_ {
    move |source| DoctorError::Read {
        path: shown(p),
        source,
    }
}

fn read(p: &Path) -> Result<String, DoctorError> {
    std::fs::read_to_string(p).map_err(cannot_read(p))
}

/// A directory's entries, by name.
fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, DoctorError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(cannot_read(dir))?
        .collect::<Result<_, _>>()
        .map_err(cannot_read(dir))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// The path given, or else the default where it exists.
fn given_or(
    given: &Option<PathBuf>,
    default: PathBuf,
    exists: fn(&Path) -> bool,
) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.clone()),
        None => Some(default).filter(|p| exists(p)),
    }
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DoctorError> {
    for e in entries(dir)? {
        let ty = e.file_type().map_err(cannot_read(dir))?;
        let p = e.path();
        if ty.is_dir() {
            let name = e.file_name();
            if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                walk(&p, out)?;
            }
        } else if ty.is_file() && is_yaml(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Read the step graph and every CI configuration file the options point at.
pub fn load(opts: &DoctorOptions) -> Result<Inputs, DoctorError> {
    let sdd_path = opts
        .sdd
        .clone()
        .unwrap_or_else(|| opts.repo.join("sdd.yaml"));
    let text = crate::model::sdd::read_file(&sdd_path).map_err(cannot_read(&sdd_path))?;
    let sdd = Sdd::parse(&shown(&sdd_path), &text)?;

    let mut circleci = Vec::new();
    let config = opts.repo.join(".circleci/config.yml");
    if let Some(p) = given_or(&opts.circleci, config, Path::is_file) {
        circleci.push(SourceFile::new(shown(&p), read(&p)?));
    }

    let mut github = Vec::new();
    let workflows = opts.repo.join(".github/workflows");
    if let Some(dir) = given_or(&opts.github_dir, workflows, Path::is_dir) {
        for e in entries(&dir)? {
            let p = e.path();
            if p.is_file() && is_yaml(&p) {
                github.push(SourceFile::new(shown(&p), read(&p)?));
            }
        }
    }

    let mut argo = Vec::new();
    let mut files = Vec::new();
    walk(opts.argo_dir.as_ref().unwrap_or(&opts.repo), &mut files)?;
    for p in files {
        let text = read(&p)?;
        if mentions_argo_kind(&text) {
            argo.push(SourceFile::new(shown(&p), text));
        }
    }
    Ok(Inputs {
        sdd,
        circleci,
        github,
        argo,
    })
}
