//! Finding and reading what doctor checks: the SDD, the CircleCI config, the GitHub
//! workflows and the files with Argo Sensors or WorkflowTemplates.

use std::path::{Path, PathBuf};

use super::argo::mentions_argo_kind;
use super::DoctorError;
use crate::sdd::Sdd;

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

fn read(p: &Path) -> Result<String, DoctorError> {
    std::fs::read_to_string(p).map_err(|e| DoctorError::Read {
        path: shown(p),
        source: e,
    })
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DoctorError> {
    let err = |e| DoctorError::Read {
        path: shown(dir),
        source: e,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ty = e.file_type().map_err(err)?;
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
    let text = crate::sdd::read_file(&sdd_path).map_err(|e| DoctorError::Read {
        path: shown(&sdd_path),
        source: e,
    })?;
    let sdd = Sdd::parse(&shown(&sdd_path), &text)?;

    let mut circleci = Vec::new();
    let cc = match &opts.circleci {
        Some(p) => Some(p.clone()),
        None => Some(opts.repo.join(".circleci/config.yml")).filter(|p| p.is_file()),
    };
    if let Some(p) = cc {
        circleci.push(SourceFile::new(shown(&p), read(&p)?));
    }

    let mut github = Vec::new();
    let gh_dir = match &opts.github_dir {
        Some(p) => Some(p.clone()),
        None => Some(opts.repo.join(".github/workflows")).filter(|p| p.is_dir()),
    };
    if let Some(dir) = gh_dir {
        let err = |e| DoctorError::Read {
            path: shown(&dir),
            source: e,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        files.retain(|p| p.is_file() && is_yaml(p));
        files.sort();
        for p in files {
            github.push(SourceFile::new(shown(&p), read(&p)?));
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
