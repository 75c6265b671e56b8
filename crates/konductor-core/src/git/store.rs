//! The git store: the only code in Konductor that touches git.
//!
//! Reads go through a local cache repository that holds the remote's `release=` tags and
//! the train commits (objects only; no work tree). Writes are create-only pushes of one tag
//! at a time, straight to the remote.
//!
//! What runs where (measured; see `docs/architecture.md`):
//! - **git2 (libgit2)**: every object and ref in the cache, tag creation, every push (with
//!   per-ref rejection reports), the advertisement check before a push, the deploy commits.
//! - **git CLI**, for what libgit2 cannot do:
//!   - *prefix reads*: `git fetch` with protocol v2 sends `ref-prefix` lines, so a tick
//!     lists only the trains it follows instead of every tag on the remote;
//!   - *partial fetch of one commit* (`--filter=blob:none --depth=1`): no file contents, so
//!     `locomotive` reports `started` without downloading the checkout. Trees stay, because
//!     libgit2's push walks the trees of the commits the remote already has;
//!   - *pushes to a repository on this machine*: libgit2's local transport writes refs
//!     directly and skips `receive-pack` and its hooks.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use git2::{
    Cred, CredentialType, Direction, ErrorClass, ErrorCode, ObjectType, Oid, RemoteCallbacks,
    Repository, Signature,
};

use crate::error::{Error, Result};
use crate::model::train::TagRecord;

/// Where the remote is, and how to talk to it without leaking credentials.
#[derive(Clone)]
pub struct Remote {
    /// The URL with any `user:password@` removed; safe to print.
    pub url: String,
    username: Option<String>,
    secret: Option<String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Parse a remote: a path, `file://`, `git://`, `http(s)://` or `ssh://` URL, or
    /// `user@host:path`. Credentials come from the URL, then `KONDUCTOR_TOKEN`, then a
    /// token minted for the GitHub App configured in the environment (see
    /// [`crate::git::github_app`]), then `GITHUB_TOKEN` (for http(s) only); git's
    /// credential helpers are the fallback.
    pub fn parse(spec: &str) -> Result<Remote> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(Error::input("the remote is empty"));
        }
        if let Some(helper) = remote_helper(spec) {
            return Err(Error::input(format!(
                "unsupported remote scheme `{helper}::`; use a path, file://, git://, http(s):// or ssh://"
            )));
        }
        if spec.starts_with('-') {
            return Err(Error::input(format!(
                "remote `{spec}` starts with `-`; give a path, file://, git://, http(s):// or ssh:// URL"
            )));
        }
        let mut username = None;
        let mut secret = None;
        let url = if let Some((scheme, rest)) = spec.split_once("://") {
            let scheme_l = scheme.to_ascii_lowercase();
            if !["file", "git", "http", "https", "ssh"].contains(&scheme_l.as_str()) {
                return Err(Error::input(format!(
                    "unsupported remote scheme `{scheme}://`; use a path, file://, git://, http(s):// or ssh://"
                )));
            }
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let (u, p) = userinfo
                        .split_once(':')
                        .map_or((userinfo, None), |(u, p)| (u, Some(p)));
                    username = Some(percent_decode(u));
                    secret = p.map(percent_decode);
                    host
                }
                None => authority,
            };
            if scheme_l.starts_with("http") && secret.is_none() {
                if let Some(tok) = env_token()? {
                    secret = Some(tok);
                    username.get_or_insert_with(|| {
                        std::env::var("KONDUCTOR_USERNAME")
                            .unwrap_or_else(|_| "x-access-token".into())
                    });
                }
            }
            if scheme_l == "ssh" {
                // user@host is not a secret for ssh; keep it in the URL.
                if let Some(u) = &username {
                    let url = format!("{scheme}://{u}@{host}/{path}");
                    return Ok(Remote {
                        url,
                        username: username.clone(),
                        secret: None,
                    });
                }
            }
            format!("{scheme}://{host}/{path}")
        } else {
            let p = Path::new(spec);
            if p.exists() {
                let abs = fs::canonicalize(p).map_err(|e| Error::Io {
                    what: format!("cannot read remote path `{spec}`"),
                    source: e,
                })?;
                abs.to_string_lossy().into_owned()
            } else if spec.contains(':') && !spec.starts_with('/') {
                spec.to_string() // scp-like ssh
            } else {
                return Err(Error::Remote(format!(
                    "remote `{spec}` is not reachable: no such path"
                )));
            }
        };
        Ok(Remote {
            url,
            username,
            secret,
        })
    }

    /// Whether git reaches this remote over ssh (`ssh://` or scp-like `host:path`).
    pub fn is_ssh(&self) -> bool {
        let lower = self.url.to_ascii_lowercase();
        lower.starts_with("ssh://") || (!lower.contains("://") && !self.is_local())
    }

    /// Whether this remote is on the local file system.
    pub fn is_local(&self) -> bool {
        self.url.starts_with('/') || self.url.starts_with("file://")
    }

    /// Remove every credential of this remote from `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = crate::git::github_app::redact(&redact_userinfo(text));
        if let Some(s) = self.secret.as_deref().filter(|s| !s.is_empty()) {
            out = out.replace(s, "***");
            if let Some(u) = &self.username {
                let b = base64(format!("{u}:{s}").as_bytes());
                out = out.replace(&b, "***");
            }
        }
        out
    }

    fn http_header(&self) -> Option<String> {
        let s = self.secret.as_ref()?;
        if !self.url.starts_with("http") {
            return None;
        }
        let u = self.username.as_deref().unwrap_or("x-access-token");
        Some(format!(
            "Authorization: Basic {}",
            base64(format!("{u}:{s}").as_bytes())
        ))
    }
}

/// The transports the git CLI may use (`GIT_ALLOW_PROTOCOL`): those [`Remote::parse`]
/// accepts.
pub const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";

/// The remote helper of git's `<transport>::<address>` syntax (`ext::sh -c …`, `fd::3`),
/// which git hands to `git-remote-<transport>`: `ext` runs any command. git takes the part
/// before the first `::` as a helper name when it has no `/` or `:` of its own and comes
/// before any `://`.
fn remote_helper(spec: &str) -> Option<&str> {
    let (helper, _) = spec.split_once("::")?;
    let is_name = !helper.is_empty()
        && helper
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'));
    is_name.then_some(helper)
}

/// The token for an https remote without credentials in its URL: `KONDUCTOR_TOKEN`, else
/// an installation token minted for the GitHub App configured in the environment
/// ([`crate::git::github_app`]), else `GITHUB_TOKEN` (whose pushes start no workflows, so
/// the App comes first).
fn env_token() -> Result<Option<String>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(t) = var("KONDUCTOR_TOKEN") {
        return Ok(Some(t));
    }
    if let Some(app) = crate::git::github_app::AppCredentials::from_env()? {
        return Ok(Some(
            crate::git::github_app::installation_token(&app)?.token,
        ));
    }
    Ok(var("GITHUB_TOKEN"))
}

/// Strip `user:pass@` from every URL in `text`.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"' || c == '`')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a create-only push found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The tag is now on the remote, created by us.
    Created,
    /// The tag already existed (someone else created it first); this is its object id.
    AlreadyExists(String),
}

/// One ref as advertised by the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full ref name.
    pub name: String,
    /// Object id.
    pub oid: String,
}

/// One commit of a first-parent chain ([`Store::first_parent_chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCommit {
    /// The commit id.
    pub id: String,
    /// Its tree id.
    pub tree: String,
    /// Its message.
    pub message: String,
    /// Its committer time, seconds since the epoch.
    pub time: i64,
}

/// Who writes a tag: `Name <email>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

impl Identity {
    /// Parse `Name <email>`, or a bare email / name.
    pub fn parse(s: &str) -> Identity {
        let s = s.trim();
        if let (Some(lt), true) = (s.find('<'), s.ends_with('>')) {
            let name = s[..lt].trim();
            let email = &s[lt + 1..s.len() - 1];
            return Identity {
                name: if name.is_empty() {
                    email.to_string()
                } else {
                    name.to_string()
                },
                email: email.to_string(),
            };
        }
        if s.contains('@') {
            Identity {
                name: s.to_string(),
                email: s.to_string(),
            }
        } else {
            Identity {
                name: s.to_string(),
                email: format!("{s}@konductor.invalid"),
            }
        }
    }

    /// From `KONDUCTOR_IDENTITY`, then git's `user.name`/`user.email`, then `$USER`.
    pub fn from_env(default_name: &str) -> Identity {
        if let Ok(v) = std::env::var("KONDUCTOR_IDENTITY") {
            if !v.trim().is_empty() {
                return Identity::parse(&v);
            }
        }
        if let Ok(cfg) = git2::Config::open_default() {
            if let (Ok(n), Ok(e)) = (cfg.get_string("user.name"), cfg.get_string("user.email")) {
                return Identity { name: n, email: e };
            }
        }
        let user = std::env::var("USER").unwrap_or_else(|_| default_name.to_string());
        Identity::parse(&user)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// An allowed-signers file, and where verifications against its current content are
/// remembered.
struct AllowedSigners {
    file: PathBuf,
    verified_dir: PathBuf,
}

/// The store: a cache repository tied to one remote.
pub struct Store {
    remote: Remote,
    repo: Repository,
    dir: PathBuf,
    temporary: bool,
    signing_key: Option<PathBuf>,
    allowed_signers: Option<AllowedSigners>,
    _lock: Option<File>,
}

/// Where the cache lives.
#[derive(Debug, Clone)]
pub enum CacheLocation {
    /// Pick: `$KONDUCTOR_CACHE_DIR`, else inside the current repository's git dir (sharing
    /// its objects), else `$XDG_CACHE_HOME/konductor` (or `~/.cache/konductor`).
    Auto,
    /// Use a fresh temporary repository, removed on drop (for `locomotive`).
    Temporary,
    /// This directory.
    Dir(PathBuf),
}

impl Store {
    /// Open (creating if needed) the cache for `remote`. Holds an exclusive lock on the
    /// cache until dropped, so that two commands on one machine do not fetch into it at once.
    pub fn open(remote: Remote, location: CacheLocation) -> Result<Store> {
        init_libgit2();
        let temporary = matches!(location, CacheLocation::Temporary);
        let (dir, alternates) = match location {
            CacheLocation::Dir(d) => (d, None),
            CacheLocation::Temporary => {
                let base = std::env::temp_dir().join(format!(
                    "konductor-{}-{}",
                    std::process::id(),
                    crate::model::time::now_nanos()
                ));
                (base, None)
            }
            CacheLocation::Auto => auto_location(&remote),
        };
        fs::create_dir_all(&dir).map_err(|e| Error::Io {
            what: format!("cannot create cache directory `{}`", dir.display()),
            source: e,
        })?;
        let lock = File::create(dir.join("konductor.lock")).map_err(|e| Error::Io {
            what: format!("cannot create lock file in `{}`", dir.display()),
            source: e,
        })?;
        lock.lock().map_err(|e| Error::Io {
            what: format!("cannot lock cache `{}`", dir.display()),
            source: e,
        })?;
        let repo_dir = dir.join("repo.git");
        let repo = match Repository::open_bare(&repo_dir) {
            Ok(r) => r,
            Err(_) => Repository::init_opts(
                &repo_dir,
                git2::RepositoryInitOptions::new()
                    .bare(true)
                    .external_template(false),
            )
            .map_err(|e| git_err(&remote, "cannot create the cache repository", e))?,
        };
        if let Some(alt) = alternates {
            let f = repo_dir.join("objects/info/alternates");
            let want = format!("{}\n", alt.display());
            if fs::read_to_string(&f).ok().as_deref() != Some(want.as_str()) {
                let _ = fs::write(&f, want);
            }
        }
        {
            let mut cfg = repo
                .config()
                .map_err(|e| git_err(&remote, "cannot read cache config", e))?;
            if cfg.get_string("remote.origin.url").ok().as_deref() != Some(remote.url.as_str()) {
                cfg.set_str("remote.origin.url", &remote.url)
                    .map_err(|e| git_err(&remote, "cannot write cache config", e))?;
            }
            // Objects missing after a partial fetch are fetched lazily by the git CLI.
            let _ = cfg.set_bool("remote.origin.promisor", true);
            let _ = cfg.set_str("remote.origin.partialclonefilter", filter(temporary));
            let _ = cfg.set_str("extensions.partialclone", "origin");
            let _ = cfg.set_i32("core.repositoryformatversion", 1);
            let _ = cfg.set_i32("gc.auto", 0);
        }
        Ok(Store {
            remote,
            repo,
            dir,
            temporary,
            signing_key: None,
            allowed_signers: None,
            _lock: Some(lock),
        })
    }

    /// Sign every tag this store writes with the SSH private key `key`, and/or trust only
    /// tags signed by a key of the `allowed` signers file (git's
    /// `gpg.ssh.allowedSignersFile` format).
    pub fn set_signing(&mut self, key: Option<PathBuf>, allowed: Option<PathBuf>) -> Result<()> {
        for (what, p) in [("signing key", &key), ("allowed signers file", &allowed)] {
            if let Some(p) = p {
                if !p.is_file() {
                    return Err(Error::input(format!(
                        "{what} `{}` is not a readable file",
                        p.display()
                    )));
                }
            }
        }
        // Verifications are remembered per allowed-signers content: revoking a key (or
        // changing its validity) takes effect at once, even on a warm cache.
        self.allowed_signers = match allowed {
            Some(file) => {
                let content = fs::read(&file).map_err(|e| Error::Io {
                    what: format!("cannot read allowed signers file `{}`", file.display()),
                    source: e,
                })?;
                let id = Oid::hash_object(git2::ObjectType::Blob, &content).map_err(|e| {
                    Error::Remote(format!("cannot hash `{}`: {}", file.display(), e.message()))
                })?;
                let verified_dir = self.dir.join("verified").join(id.to_string());
                Some(AllowedSigners { file, verified_dir })
            }
            None => None,
        };
        self.signing_key = key;
        Ok(())
    }

    /// Whether reading commands ignore tags that are not signed by an allowed signer.
    pub fn requires_signatures(&self) -> bool {
        self.allowed_signers.is_some()
    }

    /// The verified signer of a tag object, cached by object id (tags are immutable) under
    /// the allowed-signers file's content.
    fn verify_cached(
        &self,
        oid: Oid,
        allowed: &AllowedSigners,
    ) -> std::result::Result<String, String> {
        let f = allowed.verified_dir.join(oid.to_string());
        if let Ok(v) = fs::read_to_string(&f) {
            if let Some(principal) = v.strip_prefix("ok ") {
                return Ok(principal.trim().to_string());
            }
        }
        let raw = match self
            .repo
            .odb()
            .and_then(|o| o.read(oid).map(|x| x.data().to_vec()))
        {
            Ok(data) => data,
            Err(e) => return Err(format!("cannot read tag object: {}", e.message())),
        };
        match crate::git::sign::verify_tag_object(&raw, &allowed.file) {
            Ok(p) => {
                let _ = fs::create_dir_all(&allowed.verified_dir);
                let _ = fs::write(&f, format!("ok {p}\n"));
                Ok(p)
            }
            // Failures are not cached: the allowed signers file may change.
            Err(e) => Err(e.to_string()),
        }
    }

    /// The remote.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.dir
    }

    /// Fetch the remote tags matching `patterns` (each a ref glob under `refs/tags/`, like
    /// `release=42.*`) into the cache, with their commits (no file contents), and drop cached tags
    /// under those patterns that the remote no longer has.
    pub fn refresh(&self, patterns: &[String]) -> Result<()> {
        if patterns.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = vec![
            "fetch".into(),
            "--no-tags".into(),
            "--no-write-fetch-head".into(),
            "--prune".into(),
            "--depth=1".into(),
            format!("--filter={}", filter(self.temporary)),
            "--quiet".into(),
            "origin".into(),
        ];
        for p in patterns {
            args.push(format!("+refs/tags/{p}:refs/tags/{p}"));
        }
        self.git_cli(&args, "cannot read tags from")?;
        self.pack_refs_if_many();
        Ok(())
    }

    /// Pack the cache's tags into `packed-refs` once more than [`LOOSE_REFS_TO_PACK`] are
    /// loose files: a fetch writes one file (a 4 KB block) per new tag, and 20,000 of
    /// them took 79 MB of disk and slowed every later read. Packing is an optimisation:
    /// a failure is left for the next fetch.
    fn pack_refs_if_many(&self) {
        let dir = self.dir.join("repo.git/refs/tags");
        let loose = fs::read_dir(&dir)
            .map(|d| d.take(LOOSE_REFS_TO_PACK + 1).count())
            .unwrap_or(0);
        if loose > LOOSE_REFS_TO_PACK {
            let _ = self.git_cli_full(&["pack-refs".into(), "--all".into(), "--prune".into()]);
        }
    }

    /// Make sure `commit` (a full or abbreviated id) is in the cache, fetching just that
    /// commit (no file contents) if needed. Returns the full id.
    pub fn ensure_commit(&self, commit: &str) -> Result<String> {
        if let Some(c) = self.find_commit(commit) {
            return Ok(c);
        }
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::input(format!(
                "commit `{commit}` is not in the local repository; give the full 40-character id so it can be fetched from `{}`",
                self.remote.url
            )));
        }
        let args: Vec<String> = [
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "--depth=1",
            "--filter=blob:none",
            "--quiet",
            "origin",
            commit,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match self.git_cli(&args, "cannot fetch commit from") {
            Ok(_) => {}
            Err(Error::Remote(m))
                if m.contains("not our ref")
                    || m.contains("couldn't find remote ref")
                    || m.contains("no such remote ref")
                    || m.contains("upload-pack: not our") =>
            {
                return Err(Error::input(format!(
                    "commit `{commit}` does not exist on `{}`",
                    self.remote.url
                )))
            }
            Err(e) => return Err(e),
        }
        self.find_commit(commit).ok_or_else(|| {
            Error::input(format!(
                "commit `{commit}` does not exist on `{}`",
                self.remote.url
            ))
        })
    }

    fn find_commit(&self, commit: &str) -> Option<String> {
        let obj = self
            .repo
            .revparse_single(&format!("{commit}^{{commit}}"))
            .ok()?;
        Some(obj.id().to_string())
    }

    /// Train-tag names in the cache under `refs/tags/release=`, without reading objects.
    pub fn tag_names(&self, glob: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut refs = self
            .repo
            .references_glob(&format!("refs/tags/{glob}"))
            .map_err(|e| git_err(&self.remote, "cannot list cached tags", e))?;
        for r in refs.names() {
            match r {
                Ok(n) => out.push(n.trim_start_matches("refs/tags/").to_string()),
                Err(_) => continue, // not UTF-8: not ours
            }
        }
        Ok(out)
    }

    /// Read the cached tags matching `glob` (e.g. `release=42.*`), with their objects.
    pub fn tag_records(&self, glob: &str) -> Result<Vec<TagRecord>> {
        let mut out = Vec::new();
        for name in self.tag_names(glob)? {
            if let Some(r) = self.tag_record(&name) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Read one cached tag.
    pub fn tag_record(&self, name: &str) -> Option<TagRecord> {
        let r = self
            .repo
            .find_reference(&format!("refs/tags/{name}"))
            .ok()?;
        let oid = r.target()?;
        self.tag_record_at(name, oid)
    }

    /// Every tag on the remote under `refs/tags/<prefix>`, read without creating refs in
    /// the cache, with each ref's id (for compare-and-swap deletes). One listing of the
    /// remote's refs, then one fetch of the objects the cache lacks (by id, `--stdin`).
    /// For `gc`, which reads the whole history: fetching a million tags as refs would
    /// write a million loose ref files into the cache, and delete them again afterwards.
    pub fn remote_tag_records(&self, prefix: &str) -> Result<Vec<(TagRecord, String)>> {
        self.remote_tag_records_in(&[prefix])
    }

    /// [`Store::remote_tag_records`] for several prefixes, with one listing.
    pub fn remote_tag_records_in(&self, prefixes: &[&str]) -> Result<Vec<(TagRecord, String)>> {
        let full: Vec<String> = prefixes.iter().map(|p| format!("refs/tags/{p}")).collect();
        let refs: Vec<RemoteRef> = self
            .ls_remote()?
            .into_iter()
            .filter(|r| full.iter().any(|f| r.name.starts_with(f)) && !r.name.ends_with("^{}"))
            .collect();
        let odb = self
            .repo
            .odb()
            .map_err(|e| git_err(&self.remote, "cannot open the cache", e))?;
        let mut missing: Vec<&str> = refs
            .iter()
            .filter(|r| Oid::from_str(&r.oid).map_or(true, |o| !odb.exists(o)))
            .map(|r| r.oid.as_str())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let mut input = missing.join("\n");
            input.push('\n');
            let filter_arg = format!("--filter={}", filter(false));
            let args: Vec<String> = [
                "fetch",
                "--stdin",
                "--no-tags",
                "--no-write-fetch-head",
                "--depth=1",
                filter_arg.as_str(),
                "--quiet",
                "origin",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let out = self.git_cli_full_input(&args, input.as_bytes())?;
            if !out.status.success() {
                return Err(
                    self.classify(&String::from_utf8_lossy(&out.stderr), "cannot fetch from")
                );
            }
        }
        Ok(refs
            .into_iter()
            .filter_map(|r| {
                let name = r.name.trim_start_matches("refs/tags/");
                let oid = Oid::from_str(&r.oid).ok()?;
                self.tag_record_at(name, oid)
                    .map(|rec| (rec, r.oid.clone()))
            })
            .collect())
    }

    fn tag_record_at(&self, name: &str, oid: Oid) -> Option<TagRecord> {
        let verdict = |oid: Oid| {
            self.allowed_signers
                .as_ref()
                .map(|allowed| self.verify_cached(oid, allowed))
        };
        Some(record_at(&self.repo, name, oid, verdict))
    }

    /// Create an annotated tag object (not yet a ref) on `commit`.
    pub fn make_tag(
        &self,
        name: &str,
        commit: &str,
        message: &str,
        who: &Identity,
        when: i64,
    ) -> Result<String> {
        // A line break in the identity would add lines to the tag object and its message.
        crate::model::train::check_one_line(
            "the identity (`KONDUCTOR_IDENTITY` or git's `user.name`/`user.email`)",
            &who.to_string(),
        )
        .map_err(Error::Input)?;
        let oid = Oid::from_str(commit)
            .map_err(|_| Error::input(format!("`{commit}` is not an object id")))?;
        let obj = self.repo.find_object(oid, None).map_err(|e| {
            git_err(
                &self.remote,
                &format!("commit `{commit}` is not in the cache"),
                e,
            )
        })?;
        let sig = Signature::new(&who.name, &who.email, &git2::Time::new(when, 0))
            .map_err(|e| Error::input(format!("invalid identity `{who}`: {}", e.message())))?;
        if let Some(key) = &self.signing_key {
            let kind = obj.kind().map_or("commit", |k| k.str());
            let mut msg = message.to_string();
            if !msg.ends_with('\n') {
                msg.push('\n');
            }
            let unsigned = format!(
                "object {oid}\ntype {kind}\ntag {name}\ntagger {} <{}> {when} +0000\n\n{msg}",
                who.name, who.email
            );
            let signed = crate::git::sign::sign_tag_object(unsigned.as_bytes(), key)
                .map_err(|e| Error::input(format!("cannot sign tag `{name}`: {e}")))?;
            let id = self
                .repo
                .odb()
                .and_then(|o| o.write(ObjectType::Tag, &signed))
                .map_err(|e| git_err(&self.remote, "cannot write signed tag object", e))?;
            return Ok(id.to_string());
        }
        let id = self
            .repo
            .tag_annotation_create(name, &obj, &sig, message)
            .map_err(|e| git_err(&self.remote, "cannot create tag object", e))?;
        Ok(id.to_string())
    }

    /// List the remote's refs (the full advertisement: git has no prefix filter on push).
    pub fn ls_remote(&self) -> Result<Vec<RemoteRef>> {
        let mut remote = self
            .repo
            .remote_anonymous(&self.remote.url)
            .map_err(|e| git_err(&self.remote, "invalid remote", e))?;
        let auth = AuthState::default();
        let cbs = callbacks(&self.remote, &auth);
        let conn = remote
            .connect_auth(Direction::Fetch, Some(cbs), Some(proxy()))
            .map_err(|e| self.net_err("cannot connect to", e, &auth))?;
        let list = conn
            .list()
            .map_err(|e| self.net_err("cannot list refs of", e, &auth))?;
        Ok(list
            .iter()
            .map(|h| RemoteRef {
                name: h.name().to_string(),
                oid: h.oid().to_string(),
            })
            .collect())
    }

    /// Push one tag object as `refs/tags/<name>`, create-only. If the remote already has the
    /// tag (someone else created it first), report who won.
    ///
    /// Pushes go through the git CLI: libgit2's push walks the ancestors and trees of every
    /// commit the remote advertises that is in the local object database, and this cache
    /// is shallow and partial (see `docs/architecture.md`). The CLI also runs a local
    /// repository's `receive-pack` and hooks, as a server would.
    pub fn push_tag_create(&self, name: &str, tag_oid: &str) -> Result<PushOutcome> {
        let refname = format!("refs/tags/{name}");
        match self.push_cli(&format!("{tag_oid}:{refname}"), None)? {
            None => {
                self.note_pushed(&refname, tag_oid);
                Ok(PushOutcome::Created)
            }
            // Most likely a concurrent creation: look again.
            Some(why) => match self.ls_remote()?.into_iter().find(|r| r.name == refname) {
                Some(r) => Ok(PushOutcome::AlreadyExists(r.oid)),
                None => Err(Error::Remote(format!(
                    "`{}` rejected tag `{name}`: {why}",
                    self.remote.url
                ))),
            },
        }
    }

    /// [`Store::push_tag_create`] for a tag whose commit the remote already has (the commit
    /// of one of its tags, as a state tag's is its trigger's): the tag object alone, sent
    /// in one connection by [`crate::git::wire`] (paths, `file://`, `git://`, `http://`),
    /// instead of a `git push` process. The advertisement that connection reads says
    /// whether the tag is there already. A refusal, or any failure, goes to
    /// [`Store::push_tag_create`], which is create-only too and says what is wrong.
    pub fn push_tag_create_on_remote_commit(
        &self,
        name: &str,
        tag_oid: &str,
    ) -> Result<PushOutcome> {
        match self.push_tag_native(&format!("refs/tags/{name}"), tag_oid) {
            Some(outcome) => Ok(outcome),
            None => self.push_tag_create(name, tag_oid),
        }
    }

    /// One create-only push of the tag object `tag_oid` as `refname` through
    /// [`crate::git::wire`]; `None` when that did not settle it.
    fn push_tag_native(&self, refname: &str, tag_oid: &str) -> Option<PushOutcome> {
        let ep = crate::git::wire::Endpoint::parse(&self.remote.url).ok()?;
        let odb = self.repo.odb().ok()?;
        let raw = odb.read(Oid::from_str(tag_oid).ok()?).ok()?;
        let (oid, pack) = single_object_pack(ObjectType::Tag, raw.data()).ok()?;
        let mut pack = Some(pack);
        let mut existing = None;
        let header = self.remote.http_header();
        let outcome = crate::git::wire::create_after_look(
            &ep,
            header.as_deref(),
            &|n| n == refname,
            &mut |refs| {
                if let Some(id) = refs.get(refname) {
                    existing = Some(id.clone());
                    return None;
                }
                Some(crate::git::wire::NewRef {
                    refname: refname.to_string(),
                    oid: oid.clone(),
                    pack: pack.take()?,
                })
            },
        );
        match outcome {
            Ok(crate::git::wire::CreateOutcome::Created) => {
                self.note_pushed(refname, tag_oid);
                Some(PushOutcome::Created)
            }
            Ok(crate::git::wire::CreateOutcome::Declined) => {
                existing.map(PushOutcome::AlreadyExists)
            }
            _ => None,
        }
    }

    /// Move (or create) the lightweight ref `refname` from `expected_old` (None: must not
    /// exist) to `new`, with `--force-with-lease`: the push is rejected if the ref moved
    /// meanwhile, and nothing is overwritten.
    ///
    /// The refspec has no `+`: a `+` forces the update whatever the lease says (git 2.47
    /// pushes `+C:ref` with `--force-with-lease=ref:A` over a ref that holds B). Without
    /// it, the lease alone allows the non-fast-forward update, git refuses a stale lease
    /// ("stale info"), and the server compares the old id it was sent under its ref lock.
    /// See `docs/architecture.md` ("Compare-and-swap pushes").
    pub fn push_ref_cas(&self, refname: &str, new: &str, expected_old: Option<&str>) -> Result<()> {
        let lease = format!("{refname}:{}", expected_old.unwrap_or(""));
        match self.push_cli(&cas_refspec(new, refname), Some(&lease))? {
            None => {
                self.note_pushed(refname, new);
                Ok(())
            }
            Some(why) => Err(Error::Conflict(format!(
                "`{refname}` moved on `{}` meanwhile ({why}); nothing was overwritten, run again to publish on top of it",
                self.remote.url
            ))),
        }
    }

    /// Delete refs on the remote, each only if it still has the id the caller saw, in as few pushes as possible; then drop them from the cache.
    /// Refs already gone are fine. A ref that changed on the remote is left alone and
    /// returned, so the caller can say so.
    ///
    /// Paths, `file://`, `git://` and `http://` remotes use [`crate::git::wire`] (one atomic
    /// push per [`WIRE_DELETE_BATCH`] refs, cost linear in the advertisement); other
    /// remotes, and servers without atomic pushes, use `git push --atomic` in batches of
    /// [`CLI_DELETE_BATCH`], whose client-side matching costs refs × advertisement.
    pub fn push_delete(&self, dels: &[crate::git::wire::Delete]) -> Result<Vec<String>> {
        if dels.is_empty() {
            return Ok(Vec::new());
        }
        let mut changed = Vec::new();
        // KONDUCTOR_DELETE_WITH_GIT=1: always use the git CLI (an escape hatch, and how the
        // tests cover that path).
        let native = if std::env::var("KONDUCTOR_DELETE_WITH_GIT").is_ok_and(|v| v == "1") {
            Err(crate::git::wire::WireError::Unsupported(
                "KONDUCTOR_DELETE_WITH_GIT=1".into(),
            ))
        } else {
            crate::git::wire::Endpoint::parse(&self.remote.url)
        };
        let mut done = 0;
        if let Ok(ep) = &native {
            let header = self.remote.http_header();
            for chunk in dels.chunks(WIRE_DELETE_BATCH) {
                match crate::git::wire::delete_refs(ep, header.as_deref(), chunk) {
                    Ok(rep) => {
                        changed.extend(rep.changed);
                        done += chunk.len();
                    }
                    // Credential helpers, redirects, old servers: the CLI knows them.
                    Err(crate::git::wire::WireError::Unsupported(_)) if done == 0 => break,
                    Err(crate::git::wire::WireError::Auth(_)) if done == 0 && header.is_none() => {
                        break
                    }
                    Err(e) => return Err(self.wire_err(e)),
                }
            }
        }
        for chunk in dels[done..].chunks(CLI_DELETE_BATCH) {
            changed.extend(self.push_delete_cli(chunk)?);
        }
        // The cache follows, in one transaction (libgit2 would rewrite packed-refs once
        // per deleted ref).
        let mut stdin = String::new();
        for d in dels {
            if !changed.contains(&d.refname) && self.repo.refname_to_id(&d.refname).is_ok() {
                stdin.push_str(&format!("delete {}\n", d.refname));
            }
        }
        if !stdin.is_empty() {
            self.git_cli_input(&["update-ref".into(), "--stdin".into()], stdin.as_bytes())?;
        }
        Ok(changed)
    }

    /// One `git push --atomic` of deletes with leases; returns the refs that changed.
    fn push_delete_cli(&self, dels: &[crate::git::wire::Delete]) -> Result<Vec<String>> {
        // What is still there, and with which id (one listing: `ls-remote` with patterns
        // would match every pattern against every ref, like push does).
        let wanted: std::collections::HashSet<&str> =
            dels.iter().map(|d| d.refname.as_str()).collect();
        let mut remote_ids = std::collections::HashMap::new();
        for r in self.ls_remote()? {
            if wanted.contains(r.name.as_str()) {
                remote_ids.insert(r.name, r.oid);
            }
        }
        let mut changed = Vec::new();
        let mut args: Vec<String> = vec![
            "push".into(),
            "--porcelain".into(),
            "--no-verify".into(),
            "--atomic".into(),
        ];
        let mut refspecs = Vec::new();
        for d in dels {
            match remote_ids.get(&d.refname) {
                None => {}
                Some(id) if *id != d.old => changed.push(d.refname.clone()),
                Some(_) => {
                    args.push(format!("--force-with-lease={}:{}", d.refname, d.old));
                    refspecs.push(format!(":{}", d.refname));
                }
            }
        }
        if refspecs.is_empty() {
            return Ok(changed);
        }
        args.push("origin".into());
        args.extend(refspecs);
        let out = self.git_cli_full(&args)?;
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with('!')).collect();
            if failed.is_empty() {
                return Err(self.classify(&String::from_utf8_lossy(&out.stderr), "cannot push to"));
            }
            return Err(Error::Remote(format!(
                "`{}` refused to delete, so nothing was deleted (atomic push): {}",
                self.remote.url,
                failed
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(changed)
    }

    fn wire_err(&self, e: crate::git::wire::WireError) -> Error {
        use crate::git::wire::WireError as W;
        let url = &self.remote.url;
        match e {
            W::Auth(m) => self.auth_err(&m),
            W::Rejected(m) => Error::Remote(format!("`{url}` refused to delete: {m}")),
            W::Remote(m) | W::Unsupported(m) => Error::Remote(format!(
                "cannot push to `{url}`: {}",
                self.remote.redact(&m)
            )),
        }
    }

    /// Write `data` as a blob in the cache; returns its id (for [`Store::commit_update`]).
    /// Writing each file as it is made keeps only ids in memory, however many files.
    pub fn write_blob(&self, data: &[u8]) -> Result<String> {
        self.repo
            .blob(data)
            .map(|id| id.to_string())
            .map_err(|e| git_err(&self.remote, "cannot write blob", e))
    }

    /// Write a commit whose tree is `base`'s tree with `files` (path → blob id, from
    /// [`Store::write_blob`]) added or replaced, and `base` as its parent (usually the
    /// previous tip of a ref).
    pub fn commit_update(
        &self,
        base: Option<&str>,
        files: &[(String, String)],
        message: &str,
        who: &Identity,
        when: i64,
    ) -> Result<String> {
        let parent = match base {
            Some(b) => Some(
                self.repo
                    .find_commit(Oid::from_str(b).map_err(|_| Error::input("bad parent id"))?)
                    .map_err(|e| git_err(&self.remote, "cannot read the previous commit", e))?,
            ),
            None => None,
        };
        let base_tree = match &parent {
            Some(p) => p
                .tree()
                .map_err(|e| git_err(&self.remote, "cannot read the previous tree", e))?,
            None => {
                let empty = self
                    .repo
                    .treebuilder(None)
                    .and_then(|tb| tb.write())
                    .map_err(|e| git_err(&self.remote, "cannot build tree", e))?;
                self.repo
                    .find_tree(empty)
                    .map_err(|e| git_err(&self.remote, "cannot build tree", e))?
            }
        };
        let mut upd = git2::build::TreeUpdateBuilder::new();
        for (path, blob) in files {
            let blob = Oid::from_str(blob).map_err(|_| Error::input("bad blob id"))?;
            upd.upsert(path.as_str(), blob, git2::FileMode::Blob);
        }
        let tree = upd
            .create_updated(&self.repo, &base_tree)
            .map_err(|e| git_err(&self.remote, "cannot build tree", e))?;
        let what = "cannot write commit";
        self.write_commit(tree, parent.as_ref(), message, who, when, what)
    }

    /// Write a commit of `tree` with `parent` (if any), authored and committed by `who`
    /// at `when`, on no branch; `what` names the failure.
    fn write_commit(
        &self,
        tree: Oid,
        parent: Option<&git2::Commit<'_>>,
        message: &str,
        who: &Identity,
        when: i64,
        what: &str,
    ) -> Result<String> {
        let tree = self
            .repo
            .find_tree(tree)
            .map_err(|e| git_err(&self.remote, "cannot read tree", e))?;
        let sig = Signature::new(&who.name, &who.email, &git2::Time::new(when, 0))
            .map_err(|e| Error::input(format!("invalid identity `{who}`: {}", e.message())))?;
        let parents: Vec<&git2::Commit<'_>> = parent.into_iter().collect();
        let id = self
            .repo
            .commit(None, &sig, &sig, message, &tree, &parents)
            .map_err(|e| git_err(&self.remote, what, e))?;
        Ok(id.to_string())
    }

    /// Write a commit of the tree of `tree_of` (a commit id) with `parent` (if any): a
    /// rollback's deploy commit, which carries an old deploy's tree on top of the head.
    pub fn commit_tree_of(
        &self,
        tree_of: &str,
        parent: Option<&str>,
        message: &str,
        who: &Identity,
        when: i64,
    ) -> Result<String> {
        let find = |id: &str| {
            Oid::from_str(id)
                .ok()
                .and_then(|o| self.repo.find_commit(o).ok())
                .ok_or_else(|| Error::Remote(format!("commit `{id}` is not in the cache")))
        };
        let tree = find(tree_of)?.tree_id();
        let parent = parent.map(find).transpose()?;
        self.write_commit(
            tree,
            parent.as_ref(),
            message,
            who,
            when,
            "cannot write commit",
        )
    }

    /// The id of the empty-tree commit every environment control record points to: the
    /// same object for every writer (fixed author, time 0), so it is stored once.
    pub fn records_anchor(&self) -> Result<String> {
        let who = Identity {
            name: "konductor".into(),
            email: "konductor@localhost".into(),
        };
        self.commit_update(None, &[], "konductor environment records\n", &who, 0)
    }

    /// Keep the cache current after a push.
    fn note_pushed(&self, refname: &str, oid: &str) {
        if let Ok(oid) = Oid::from_str(oid) {
            let _ = self.repo.reference(refname, oid, true, "konductor: pushed");
        }
    }

    /// Fetch one ref with its whole history into the cache. (A deploy tag's history is a
    /// chain of small manifest commits. It must be complete: libgit2's push walks the
    /// ancestors of the commits it hides and does not honour shallow grafts.)
    pub fn fetch_ref(&self, refname: &str) -> Result<bool> {
        let args: Vec<String> = vec![
            "fetch".into(),
            "--no-tags".into(),
            "--no-write-fetch-head".into(),
            "--quiet".into(),
            "origin".into(),
            format!("+{refname}:{refname}"),
        ];
        match self.git_cli(&args, "cannot fetch from") {
            Ok(_) => Ok(true),
            Err(Error::Remote(m)) if m.contains("couldn't find remote ref") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The message of a cached commit.
    pub fn commit_message(&self, commit: &str) -> Option<String> {
        let c = self.repo.find_commit(Oid::from_str(commit).ok()?).ok()?;
        Some(String::from_utf8_lossy(c.message_bytes()).into_owned())
    }

    /// The object id a cached ref points to.
    pub fn ref_target(&self, refname: &str) -> Option<String> {
        self.repo.refname_to_id(refname).ok().map(|o| o.to_string())
    }

    /// The committer time of a cached commit (seconds since the epoch), if the cache has it.
    pub fn commit_time(&self, commit: &str) -> Option<i64> {
        let c = self.repo.find_commit(Oid::from_str(commit).ok()?).ok()?;
        let t = c.committer().when().seconds();
        Some(t)
    }

    /// The first-parent chain from `rev` (a cached ref such as a deploy tag, see
    /// [`Store::fetch_ref`], or a commit id), newest first, at most `max` commits. A
    /// commit missing from the cache ends the chain. A deploy tag's history.
    pub fn first_parent_chain(&self, rev: &str, max: usize) -> Vec<ChainCommit> {
        let mut out = Vec::new();
        let mut next = self
            .repo
            .revparse_single(&format!("{rev}^{{commit}}"))
            .ok()
            .and_then(|o| o.into_commit().ok());
        while let Some(c) = next {
            if out.len() >= max {
                break;
            }
            out.push(ChainCommit {
                id: c.id().to_string(),
                tree: c.tree_id().to_string(),
                message: String::from_utf8_lossy(c.message_bytes()).into_owned(),
                time: c.committer().when().seconds(),
            });
            next = c.parent(0).ok();
        }
        out
    }

    /// Write a commit holding the manifest folder `scan` describes (see
    /// [`crate::git::manifests`]), with `parent` if given. The commit is on no branch.
    pub fn commit_dir(
        &self,
        scan: &crate::git::manifests::Scan,
        parent: Option<&str>,
        message: &str,
        who: &Identity,
        when: i64,
    ) -> Result<String> {
        let tree = self.write_tree(scan)?;
        let parent = match parent {
            Some(p) => Some(
                self.repo
                    .find_commit(Oid::from_str(p).map_err(|_| Error::input("bad parent id"))?)
                    .map_err(|e| {
                        git_err(&self.remote, "cannot read the previous deploy commit", e)
                    })?,
            ),
            None => None,
        };
        let what = "cannot write the deploy commit";
        self.write_commit(tree, parent.as_ref(), message, who, when, what)
    }

    /// Write the trees of `scan`, children first; the root's id (the empty tree when
    /// nothing can be published). Tree entry names are bytes, as git's are.
    fn write_tree(&self, scan: &crate::git::manifests::Scan) -> Result<Oid> {
        use crate::git::manifests::Entry;
        let build = |e: git2::Error| git_err(&self.remote, "cannot build tree", e);
        let mut ids: Vec<Oid> = Vec::with_capacity(scan.dirs.len());
        for dir in &scan.dirs {
            let mut tb = self.repo.treebuilder(None).map_err(build)?;
            for (name, entry) in &dir.entries {
                let (id, mode) = match entry {
                    Entry::Dir(i) => (ids[*i], 0o040000),
                    Entry::File { path, executable } => {
                        let data = fs::read(path).map_err(|err| Error::Io {
                            what: format!("cannot read `{}`", path.display()),
                            source: err,
                        })?;
                        let blob = self
                            .repo
                            .blob(&data)
                            .map_err(|e| git_err(&self.remote, "cannot write blob", e))?;
                        (blob, if *executable { 0o100755 } else { 0o100644 })
                    }
                };
                let name = std::ffi::CString::new(name.clone())
                    .map_err(|_| Error::input("a file name holds a NUL byte"))?;
                tb.insert(name, id, mode).map_err(build)?;
            }
            ids.push(
                tb.write()
                    .map_err(|e| git_err(&self.remote, "cannot write tree", e))?,
            );
        }
        match scan.root() {
            Some(root) => Ok(ids[root]),
            None => {
                let tb = self.repo.treebuilder(None).map_err(build)?;
                tb.write()
                    .map_err(|e| git_err(&self.remote, "cannot write tree", e))
            }
        }
    }

    /// The content of `path` at `commit`, fetching missing objects lazily.
    pub fn read_file_at(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        if let Ok(oid) = Oid::from_str(commit) {
            if let Ok(c) = self.repo.find_commit(oid) {
                if let Ok(tree) = c.tree() {
                    match tree.get_path(Path::new(path)) {
                        Ok(entry) => {
                            if let Ok(blob) = self.repo.find_blob(entry.id()) {
                                return Ok(Some(blob.content().to_vec()));
                            }
                        }
                        Err(e)
                            if e.code() == ErrorCode::NotFound
                                && self.tree_complete(&tree, path) =>
                        {
                            return Ok(None)
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        // Some object is missing (partial cache): let git fetch it from the promisor remote.
        let spec = format!("{commit}:{path}");
        let exists = self.git_cli(
            &["cat-file".into(), "-e".into(), spec.clone()],
            "cannot read from",
        );
        if exists.is_err() {
            return Ok(None);
        }
        let out = self.git_cli(
            &["cat-file".into(), "blob".into(), spec],
            "cannot read from",
        )?;
        Ok(Some(out))
    }

    fn tree_complete(&self, tree: &git2::Tree<'_>, path: &str) -> bool {
        // A NotFound is trustworthy only if every tree on the way was present.
        let mut cur = tree.clone();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            let Some(id) = cur.get_name(p).map(|e| e.id()) else {
                return true;
            };
            match self.repo.find_tree(id) {
                Ok(t) => cur = t,
                Err(_) => return false,
            }
        }
        true
    }

    /// Paths that differ between two commits (trees only; blobs are not needed).
    pub fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let tree_of = |c: &str| -> Option<git2::Tree<'_>> {
            let c = self.repo.find_commit(Oid::from_str(c).ok()?).ok()?;
            c.tree().ok()
        };
        if let (Some(a), Some(b)) = (tree_of(from), tree_of(to)) {
            if let Ok(diff) = self.repo.diff_tree_to_tree(Some(&a), Some(&b), None) {
                let mut out = Vec::new();
                for d in diff.deltas() {
                    for f in [d.old_file().path(), d.new_file().path()]
                        .into_iter()
                        .flatten()
                    {
                        let s = f.to_string_lossy().into_owned();
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                }
                return Ok(out);
            }
        }
        let out = self.git_cli(
            &[
                "diff-tree".into(),
                "-r".into(),
                "--name-only".into(),
                "--no-renames".into(),
                from.into(),
                to.into(),
            ],
            "cannot compare commits from",
        )?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// The kind of a cached object (`commit`, `tree`, `blob`, `tag`), or None if the cache
    /// does not have it.
    pub fn object_kind(&self, id: &str) -> Option<&'static str> {
        let oid = Oid::from_str(id).ok()?;
        let odb = self.repo.odb().ok()?;
        let (_, kind) = odb.read_header(oid).ok()?;
        Some(match kind {
            ObjectType::Commit => "commit",
            ObjectType::Tree => "tree",
            ObjectType::Blob => "blob",
            ObjectType::Tag => "tag",
            _ => "object",
        })
    }

    /// Whether `commit`'s tree has a file at `path`, reading trees only (no file contents
    /// are fetched while the cache has the trees).
    pub fn has_file_at(&self, commit: &str, path: &str) -> Result<bool> {
        if let Some(tree) = Oid::from_str(commit)
            .ok()
            .and_then(|o| self.repo.find_commit(o).ok())
            .and_then(|c| c.tree().ok())
        {
            match tree.get_path(Path::new(path)) {
                Ok(e) => return Ok(e.kind() == Some(ObjectType::Blob)),
                Err(e) if e.code() == ErrorCode::NotFound && self.tree_complete(&tree, path) => {
                    return Ok(false)
                }
                Err(_) => {}
            }
        }
        Ok(self.read_file_at(commit, path)?.is_some())
    }

    /// Whether `ancestor` is an ancestor of `commit` (or equal), if it can be told locally.
    pub fn is_ancestor(&self, ancestor: &str, commit: &str) -> Option<bool> {
        let a = Oid::from_str(ancestor).ok()?;
        let c = Oid::from_str(commit).ok()?;
        if a == c {
            return Some(true);
        }
        self.repo.graph_descendant_of(c, a).ok()
    }

    /// Run the git CLI in the cache repository, with credentials in the environment only.
    fn git_cli_full(&self, args: &[String]) -> Result<std::process::Output> {
        self.git_command(args)
            .output()
            .map_err(|e| Error::Remote(format!("cannot run `git` (is it installed?): {e}")))
    }

    /// [`Store::git_cli_full`] with `input` on stdin.
    fn git_cli_full_input(&self, args: &[String], input: &[u8]) -> Result<std::process::Output> {
        let mut child = self
            .git_command(args)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Remote(format!("cannot run `git` (is it installed?): {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let data = input.to_vec();
        // Write from another thread: git may fill its stdout/stderr pipes before it has
        // read all of its input.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Remote(format!("cannot run `git`: {e}")))?;
        let _ = writer.join();
        Ok(out)
    }

    fn git_command(&self, args: &[String]) -> Command {
        self.git_command_at(&self.dir.join("repo.git"), args)
    }

    /// The git CLI in the repository `git_dir` (the cache's, or a scratch repository
    /// beside it), with the remote's credentials in the environment only.
    pub(crate) fn git_command_at(&self, git_dir: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(super::wire::git_program());
        cmd.arg("--git-dir").arg(git_dir);
        cmd.args([
            "-c",
            "protocol.version=2",
            "-c",
            "fetch.writeCommitGraph=false",
            "-c",
            "maintenance.auto=false",
            "-c",
            "gc.auto=0",
        ]);
        cmd.args(args);
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            // Only the transports Konductor supports: never `ext::` (runs a command),
            // `fd::` or another remote helper, whatever the URL or a config says.
            .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .env("GCM_INTERACTIVE", "never")
            .env("LC_ALL", "C")
            .env(
                "GIT_SSH_COMMAND",
                std::env::var("GIT_SSH_COMMAND").unwrap_or_else(|_| "ssh -o BatchMode=yes".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(h) = self.remote.http_header() {
            // Passed through the environment, so it never shows in `ps`.
            let n: usize = std::env::var("GIT_CONFIG_COUNT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            cmd.env("GIT_CONFIG_COUNT", (n + 2).to_string())
                .env(format!("GIT_CONFIG_KEY_{n}"), "http.extraHeader")
                .env(format!("GIT_CONFIG_VALUE_{n}"), h)
                .env(format!("GIT_CONFIG_KEY_{}", n + 1), "credential.helper")
                .env(format!("GIT_CONFIG_VALUE_{}", n + 1), "");
        }
        cmd
    }

    /// Run a local git CLI command in the cache with `input` on its stdin.
    fn git_cli_input(&self, args: &[String], input: &[u8]) -> Result<()> {
        let out = self.git_cli_full_input(args, input)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let source = match lines.iter().find_map(|l| local_io_error(l)) {
            Some(kind) => std::io::Error::from(kind),
            None => std::io::Error::other("git failed"),
        };
        Err(Error::Io {
            what: format!(
                "cannot update the cache `{}`: git {}: {}",
                self.dir.display(),
                args.first().map_or("", String::as_str),
                bounded(&lines, ERROR_LINES, ERROR_LINE_CHARS)
            ),
            source,
        })
    }

    /// Run the git CLI; a failure becomes a remote or authentication error.
    fn git_cli(&self, args: &[String], what: &str) -> Result<Vec<u8>> {
        let out = self.git_cli_full(args)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        // A shallow fetch whose refspecs match nothing exits 1 and says nothing.
        if out.status.code() == Some(1)
            && out.stderr.iter().all(u8::is_ascii_whitespace)
            && args.first().map(String::as_str) == Some("fetch")
            && args.iter().any(|a| a == "--depth=1")
        {
            return Ok(Vec::new());
        }
        Err(self.classify(&String::from_utf8_lossy(&out.stderr), what))
    }

    pub(crate) fn classify(&self, stderr: &str, what: &str) -> Error {
        let stderr = self.remote.redact(stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
            .map(|l| {
                l.trim_start_matches("fatal: ")
                    .trim_start_matches("error: ")
            })
            .collect();
        // A cache git could not write (a full disk) is a local failure, not the remote's.
        // git does not always say why ("couldn't write '…/refs/tags/x.lock'"), so when it
        // names a local write, try one.
        // The server's own words come as `remote: …` (or `remote error: …`): its full
        // disk is the remote's failure, not ours.
        let local_lines = || lines.iter().filter(|l| !said_by_the_server(l));
        let says = local_lines().find_map(|l| local_io_error(l));
        let cache_paths = [
            self.dir.to_string_lossy().into_owned(),
            fs::canonicalize(&self.dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ];
        let in_cache = local_lines().any(|l| {
            is_local_write_failure(l)
                && cache_paths
                    .iter()
                    .any(|p| !p.is_empty() && l.contains(p.as_str()))
        });
        if says.is_some() || in_cache {
            // A failed ref transaction is rolled back, so the disk may have room again
            // by now: the probe then finds nothing, and git's words decide.
            let cause = match (self.probe_write(), says) {
                (Err(e), _) => e,
                (Ok(()), Some(kind)) => std::io::Error::from(kind),
                (Ok(()), None) => std::io::Error::other(
                    "git could not write in it (is the disk or the quota full?)",
                ),
            };
            // The cause follows in the printed chain: `…: No space left on device`.
            return Error::Io {
                what: format!(
                    "cannot write the cache `{}` (git: {})",
                    self.dir.display(),
                    bounded(&lines, ERROR_LINES, ERROR_LINE_CHARS)
                ),
                source: cause,
            };
        }
        let detail = bounded(&lines, ERROR_LINES, ERROR_LINE_CHARS);
        let lower = detail.to_ascii_lowercase();
        if lower.contains("authentication failed")
            || lower.contains("could not read username")
            || lower.contains("could not read password")
            || lower.contains("terminal prompts disabled")
            || lower.contains("the requested url returned error: 401")
            || lower.contains("the requested url returned error: 403")
            || lower.contains("permission denied (publickey")
        {
            return self.auth_err(&detail);
        }
        self.remote_err(what, &detail)
    }

    /// Push one refspec with the git CLI (see [`Store::push_tag_create`] for why the CLI).
    /// Returns the rejection reason, if the remote rejected the ref.
    fn push_cli(&self, refspec: &str, lease: Option<&str>) -> Result<Option<String>> {
        let mut args: Vec<String> = vec!["push".into(), "--porcelain".into(), "--no-verify".into()];
        if let Some(l) = lease {
            args.push(format!("--force-with-lease={l}"));
        }
        args.push("origin".into());
        args.push(refspec.into());
        let out = self.git_cli_full(&args)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            // `=`: the remote already had exactly this (a racing writer made the same
            // object): not ours to claim.
            if stdout.lines().any(|l| l.starts_with("=\t")) {
                return Ok(Some("up to date: already there".into()));
            }
            return Ok(None);
        }
        match stdout.lines().find(|l| l.starts_with('!')) {
            Some(l) => {
                let verdict = l.split('\t').nth(2).unwrap_or(l).trim().to_string();
                let said = self.server_said(&String::from_utf8_lossy(&out.stderr));
                Ok(Some(match said {
                    Some(said) => format!("{verdict}; the server said: {said}"),
                    None => verdict,
                }))
            }
            None => Err(self.classify(&String::from_utf8_lossy(&out.stderr), "cannot push to")),
        }
    }

    fn net_err(&self, what: &str, e: git2::Error, auth: &AuthState) -> Error {
        let msg = self.remote.redact(e.message());
        if auth.rejected()
            || e.code() == ErrorCode::Auth
            || (e.class() == ErrorClass::Http && msg.contains("401"))
        {
            return self.auth_err(&msg);
        }
        self.remote_err(what, &msg)
    }

    /// The remote rejected the credentials (`detail` is already redacted), with what to
    /// check for this kind of remote.
    fn auth_err(&self, detail: &str) -> Error {
        let hint = if self.remote.is_ssh() {
            "check that the SSH key in use is one the server accepts: the ssh agent \
             (`SSH_AUTH_SOCK`), else `~/.ssh/id_ed25519`, `id_ecdsa` or `id_rsa` (pushes use \
             `ssh`, so `GIT_SSH_COMMAND` and `~/.ssh/config` apply to them too)"
        } else {
            "set `KONDUCTOR_TOKEN`, configure a GitHub App (`KONDUCTOR_GITHUB_APP_ID`, \
             `KONDUCTOR_GITHUB_INSTALLATION_ID`, `KONDUCTOR_GITHUB_APP_KEY_FILE`) or configure \
             a git credential helper"
        };
        Error::Auth(format!(
            "`{}` rejected the credentials ({detail}); {hint}",
            self.remote.url
        ))
    }

    /// Any other remote failure (`detail` is already redacted); an unknown SSH host key
    /// says how to trust it.
    fn remote_err(&self, what: &str, detail: &str) -> Error {
        let url = &self.remote.url;
        let lower = detail.to_ascii_lowercase();
        if self.remote.is_ssh()
            && (lower.contains("hostkey") || lower.contains("host key verification failed"))
        {
            return Error::Remote(format!(
                "{what} `{url}`: {detail}; the server's SSH host key is not in \
                 `~/.ssh/known_hosts`: add it after checking its fingerprint (for example \
                 `ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`)"
            ));
        }
        Error::Remote(format!("{what} `{url}`: {detail}"))
    }

    /// Whether the cache directory can take 64 KiB more: writes and removes a probe file.
    fn probe_write(&self) -> std::io::Result<()> {
        let probe = self.dir.join(".write-probe");
        let r = File::create(&probe)
            .and_then(|mut f| f.write_all(&[0u8; 64 * 1024]).and_then(|()| f.sync_all()));
        let _ = fs::remove_file(&probe);
        r
    }

    /// The `remote:` lines of a push's stderr (what a server hook printed), redacted,
    /// stripped of control characters and bounded; `None` when the server said nothing.
    fn server_said(&self, stderr: &str) -> Option<String> {
        let stderr = self.remote.redact(stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("remote:"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        (!lines.is_empty()).then(|| bounded(&lines, ERROR_LINES, ERROR_LINE_CHARS))
    }

    /// Write a small file in the cache directory (e.g. derived state), atomically.
    pub fn write_cache_file(&self, name: &str, data: &[u8]) -> Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let dst = self.dir.join(name);
        let mut f = File::create(&tmp).map_err(|e| Error::Io {
            what: format!("cannot write `{}`", tmp.display()),
            source: e,
        })?;
        f.write_all(data).map_err(|e| Error::Io {
            what: format!("cannot write `{}`", tmp.display()),
            source: e,
        })?;
        fs::rename(&tmp, &dst).map_err(|e| Error::Io {
            what: format!("cannot write `{}`", dst.display()),
            source: e,
        })
    }

    /// Read a small file from the cache directory.
    pub fn read_cache_file(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(name)).ok()
    }

    /// The HEAD commit of the repository in the current directory, if any.
    pub fn local_origin_url() -> Option<String> {
        let repo = Repository::discover(".").ok()?;
        let remote = repo.find_remote("origin").ok()?;
        remote.url().ok().map(str::to_string)
    }
}

/// The record of the tag `name` whose ref holds `oid`, read from `repo`; `verdict` gives the
/// signer of a tag object (or why there is none), `None` without verification.
fn record_at(
    repo: &Repository,
    name: &str,
    oid: Oid,
    verdict: impl Fn(Oid) -> Option<std::result::Result<String, String>>,
) -> TagRecord {
    match repo.find_tag(oid) {
        Ok(tag) => {
            let commit = tag.target_id();
            let commit = repo
                .find_object(commit, None)
                .ok()
                .and_then(|o| o.peel(ObjectType::Commit).ok())
                .map_or(commit, |c| c.id());
            let (tagger, time) = tag.tagger().map_or((None, None), |s| {
                (
                    Some(format!(
                        "{} <{}>",
                        s.name().unwrap_or("?"),
                        s.email().unwrap_or("?")
                    )),
                    Some(s.when().seconds()),
                )
            });
            let mut message = tag.message().ok().flatten().unwrap_or("").to_string();
            if let Some(at) = message.find("-----BEGIN ") {
                message.truncate(at);
            }
            let (signer, signature_error) = match verdict(oid) {
                Some(Ok(p)) => (Some(p), None),
                Some(Err(e)) => (None, Some(e)),
                None => (None, None),
            };
            TagRecord {
                name: name.to_string(),
                commit: commit.to_string(),
                tagger,
                time,
                message,
                signer,
                signature_error,
            }
        }
        Err(_) => TagRecord {
            name: name.to_string(),
            commit: oid.to_string(),
            tagger: None,
            time: None,
            message: String::new(),
            signer: None,
            signature_error: verdict(oid)
                .map(|_| "a lightweight tag carries no signature".to_string()),
        },
    }
}

/// The raw bytes of an annotated tag object `name` on the commit `commit`, signed with
/// `key` (git's SSH signature format) when given.
pub fn tag_object_bytes(
    name: &str,
    commit: &str,
    message: &str,
    who: &Identity,
    when: i64,
    key: Option<&Path>,
) -> Result<Vec<u8>> {
    crate::model::train::check_one_line(
        "the identity (`KONDUCTOR_IDENTITY` or git's `user.name`/`user.email`)",
        &who.to_string(),
    )
    .map_err(Error::Input)?;
    // What libgit2 checks when it makes a signature: no angle brackets in the parts.
    Signature::new(&who.name, &who.email, &git2::Time::new(when, 0))
        .map_err(|e| Error::input(format!("invalid identity `{who}`: {}", e.message())))?;
    let mut msg = message.to_string();
    if !msg.ends_with('\n') {
        msg.push('\n');
    }
    let unsigned = format!(
        "object {commit}\ntype commit\ntag {name}\ntagger {} <{}> {when} +0000\n\n{msg}",
        who.name, who.email
    );
    match key {
        Some(key) => crate::git::sign::sign_tag_object(unsigned.as_bytes(), key)
            .map_err(|e| Error::input(format!("cannot sign tag `{name}`: {e}"))),
        None => Ok(unsigned.into_bytes()),
    }
}

/// A repository on this machine whose objects a command may read: the CI job's checkout.
/// Nothing is written to it.
pub struct Checkout {
    repo: Repository,
    /// The temporary object directory of [`Checkout::from_pack`], removed on drop.
    dir: Option<PathBuf>,
}

impl Checkout {
    /// The repository the current directory is in (as git finds it: `GIT_DIR`, then the
    /// parents), if any.
    pub fn discover() -> Option<Checkout> {
        init_libgit2();
        Repository::open_from_env()
            .ok()
            .map(|repo| Checkout { repo, dir: None })
    }

    /// The repository at `path` itself (a remote on this machine), if it opens: it has
    /// every tag it advertises, and their commits.
    pub fn open_local(path: &Path) -> Option<Checkout> {
        init_libgit2();
        Repository::open_ext(
            path,
            git2::RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&std::ffi::OsStr>(),
        )
        .ok()
        .map(|repo| Checkout { repo, dir: None })
    }

    /// The objects of `pack` (received from the remote: tag objects), loaded by libgit2's
    /// pack writer into a temporary object directory. Only their objects: it has no refs,
    /// and the commits the tags point to are not in it.
    pub fn from_pack(pack: &[u8]) -> Result<Checkout> {
        init_libgit2();
        let dir = std::env::temp_dir().join(format!(
            "konductor-tags-{}-{}",
            std::process::id(),
            crate::model::time::now_nanos()
        ));
        fs::create_dir_all(dir.join("pack"))
            .map_err(|err| Error::Remote(format!("cannot make a temporary directory: {err}")))?;
        let made = Self::load_pack(&dir, pack);
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    fn load_pack(dir: &Path, pack: &[u8]) -> Result<Checkout> {
        let e = |err: git2::Error| {
            Error::Remote(format!("cannot load the tags' pack: {}", err.message()))
        };
        // The indexer writes the pack and its index (no connectivity check: the tags'
        // commits are not here); the object database reads them.
        let mut w = git2::Indexer::new(None, &dir.join("pack"), 0, false).map_err(e)?;
        w.write_all(pack)
            .map_err(|err| Error::Remote(format!("cannot load the tags' pack: {err}")))?;
        w.commit().map_err(e)?;
        let odb = git2::Odb::new().map_err(e)?;
        odb.add_disk_alternate(&dir.to_string_lossy()).map_err(e)?;
        let repo = Repository::from_odb(odb).map_err(e)?;
        Ok(Checkout {
            repo,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// The record of the tag `name` whose ref holds `oid`, if this repository has that
    /// tag object; verified against `allowed_signers` when given.
    pub fn tag_record(
        &self,
        name: &str,
        oid: &str,
        allowed_signers: Option<&Path>,
    ) -> Option<TagRecord> {
        let oid = Oid::from_str(oid).ok()?;
        let odb = self.repo.odb().ok()?;
        let (_, kind) = odb.read_header(oid).ok()?;
        if kind != ObjectType::Tag {
            return None;
        }
        let verdict = |oid: Oid| {
            allowed_signers.map(|file| {
                let raw = odb
                    .read(oid)
                    .map(|o| o.data().to_vec())
                    .map_err(|e| format!("cannot read tag object: {}", e.message()))?;
                crate::git::sign::verify_tag_object(&raw, file).map_err(|e| e.to_string())
            })
        };
        Some(record_at(&self.repo, name, oid, verdict))
    }

    /// Whether this repository has the commit `oid`.
    pub fn has_commit(&self, oid: &str) -> bool {
        let Ok(oid) = Oid::from_str(oid) else {
            return false;
        };
        self.repo
            .odb()
            .and_then(|o| o.read_header(oid))
            .is_ok_and(|(_, kind)| kind == ObjectType::Commit)
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// A pack holding the one object `raw` of kind `kind`, and the object's id.
pub fn single_object_pack(kind: ObjectType, raw: &[u8]) -> Result<(String, Vec<u8>)> {
    let e = |what: &str, err: git2::Error| Error::Remote(format!("{what}: {}", err.message()));
    let odb = git2::Odb::new().map_err(|err| e("cannot make an object database", err))?;
    odb.add_new_mempack_backend(1)
        .map_err(|err| e("cannot make an object database", err))?;
    let oid = odb
        .write(kind, raw)
        .map_err(|err| e("cannot write the tag object", err))?;
    let repo = Repository::from_odb(odb).map_err(|err| e("cannot pack the tag object", err))?;
    let mut pb = repo
        .packbuilder()
        .map_err(|err| e("cannot pack the tag object", err))?;
    pb.insert_object(oid, None)
        .map_err(|err| e("cannot pack the tag object", err))?;
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf)
        .map_err(|err| e("cannot pack the tag object", err))?;
    Ok((oid.to_string(), buf.to_vec()))
}

/// A create-only push of one ref in one connection to `remote`, decided after a look at
/// its refs (see [`crate::git::wire::create_after_look`]). `None` when this remote's
/// transport is not spoken natively (https, ssh), or the connection failed: the caller
/// then takes the general path, which reports errors properly.
pub fn create_after_look(
    remote: &Remote,
    keep: &dyn Fn(&str) -> bool,
    decide: &mut dyn FnMut(
        &std::collections::HashMap<String, String>,
    ) -> Option<crate::git::wire::NewRef>,
) -> Option<crate::git::wire::CreateOutcome> {
    let ep = crate::git::wire::Endpoint::parse(&remote.url).ok()?;
    let header = remote.http_header();
    crate::git::wire::create_after_look(&ep, header.as_deref(), keep, decide).ok()
}

/// One upload-pack conversation with `remote` (see [`crate::git::wire::fetch_after_look`]).
/// `None` when this remote's transport is not spoken natively (https, ssh), or anything
/// failed: the caller then takes the general path.
pub fn fetch_after_look(
    remote: &Remote,
    keep: &dyn Fn(&str) -> bool,
    choose: &mut dyn FnMut(&std::collections::HashMap<String, String>) -> crate::git::wire::Wants,
) -> Option<crate::git::wire::Fetched> {
    let ep = crate::git::wire::Endpoint::parse(&remote.url).ok()?;
    let header = remote.http_header();
    crate::git::wire::fetch_after_look(&ep, header.as_deref(), keep, choose).ok()
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn auto_location(remote: &Remote) -> (PathBuf, Option<PathBuf>) {
    let slug = slug(&remote.url);
    if let Ok(base) = std::env::var("KONDUCTOR_CACHE_DIR") {
        if !base.is_empty() {
            // The common dir: a linked worktree's own git dir has no objects.
            let alt = Repository::discover(".")
                .ok()
                .map(|r| common_dir(&r).join("objects"));
            return (PathBuf::from(base).join(slug), alt);
        }
    }
    if let Ok(repo) = Repository::discover(".") {
        let gitdir = common_dir(&repo);
        return (
            gitdir.join("konductor").join(slug),
            Some(gitdir.join("objects")),
        );
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    (base.join("konductor").join(slug), None)
}

/// The git directory that holds the objects: for a linked worktree, the main
/// repository's (named by the worktree's `commondir` file; libgit2's `commondir()` gave
/// the worktree's own directory here), else the repository's own.
fn common_dir(repo: &Repository) -> PathBuf {
    let own = repo.path();
    match fs::read_to_string(own.join("commondir")) {
        Ok(rel) => {
            let dir = own.join(rel.trim());
            dir.canonicalize().unwrap_or(dir)
        }
        Err(_) => own.to_path_buf(),
    }
}

fn slug(url: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(url.as_bytes());
    let h: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let tail: String = url
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("remote")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{tail}-{h}")
}

/// Let libgit2 open the cache, which the git CLI marks as a partial clone
/// (`extensions.partialclone`) after a filtered fetch.
pub(crate) fn init_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: called once, before this process opens any repository, so no other
        // thread is reading libgit2's global extension list.
        unsafe {
            let _ = git2::opts::set_extensions(&["partialclone", "noop"]);
        }
    });
}

/// The refspec of a compare-and-swap push: never forced (no `+`), so that the lease
/// decides. Kept in one place, with a unit test, because a `+` here silently turns every
/// compare-and-swap into an overwrite.
fn cas_refspec(new: &str, refname: &str) -> String {
    format!("{new}:{refname}")
}

/// The partial-fetch filter: the commit and its trees, no file contents. (`tree:0` would
/// leave the trees out, but `git push` then fetches the train commit's tree lazily to
/// build its pack: one more round trip than it saves.)
fn filter(_temporary: bool) -> &'static str {
    "blob:none"
}

/// Refs deleted per push by [`crate::git::wire`]: one atomic transaction on the server each.
pub const WIRE_DELETE_BATCH: usize = 50_000;
/// Refs deleted per `git push --atomic` (its lease check is quadratic in the batch).
pub const CLI_DELETE_BATCH: usize = 500;

/// Loose tag refs in the cache above which a fetch packs them (`git pack-refs`).
pub const LOOSE_REFS_TO_PACK: usize = 500;

/// At most this many lines of git's (or a server's) output go into an error message…
pub const ERROR_LINES: usize = 5;
/// …each cut at this many characters.
pub const ERROR_LINE_CHARS: usize = 300;

/// `lines` joined with `; `, at most `max_lines` of them, each cut at `max_chars`
/// characters, control characters replaced (a server's text must not drive the terminal),
/// and `… (N more lines)` for the rest: an error message stays short whatever git printed.
pub fn bounded(lines: &[&str], max_lines: usize, max_chars: usize) -> String {
    let mut out: Vec<String> = lines
        .iter()
        .take(max_lines)
        .map(|l| {
            let mut cut: String = l
                .chars()
                .take(max_chars)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if l.chars().count() > max_chars {
                cut.push('…');
            }
            cut
        })
        .collect();
    if lines.len() > max_lines {
        out.push(format!("… ({} more lines)", lines.len() - max_lines));
    }
    out.join("; ")
}

/// The local I/O failure a line of git's (or libgit2's) output reports, if any: the disk
/// or the quota is full, or the file system is read-only.
fn local_io_error(line: &str) -> Option<std::io::ErrorKind> {
    let lower = line.to_ascii_lowercase();
    if lower.contains("no space left on device") || lower.contains("disk quota exceeded") {
        Some(std::io::ErrorKind::StorageFull)
    } else if lower.contains("read-only file system") {
        Some(std::io::ErrorKind::ReadOnlyFilesystem)
    } else {
        None
    }
}

/// Whether a line of git's output is the server speaking.
fn said_by_the_server(line: &str) -> bool {
    line.starts_with("remote:") || line.contains("remote error")
}

/// Whether a line of git's output says it could not write a local file (git does not
/// always add the reason).
fn is_local_write_failure(line: &str) -> bool {
    !said_by_the_server(line)
        && [
            "couldn't write",
            "could not write",
            "unable to write",
            "unable to create",
            "write error",
            "cannot lock ref",
        ]
        .iter()
        .any(|p| line.contains(p))
}

#[derive(Default, Clone)]
struct AuthState {
    tries: Arc<Mutex<BTreeMap<u32, u32>>>,
    rejected: Arc<Mutex<bool>>,
}

impl AuthState {
    fn rejected(&self) -> bool {
        *self.rejected.lock().expect("lock")
    }
}

fn callbacks<'a>(remote: &Remote, auth: &AuthState) -> RemoteCallbacks<'a> {
    let mut cbs = RemoteCallbacks::new();
    let remote = remote.clone();
    let auth = auth.clone();
    cbs.credentials(move |url, user_from_url, allowed| {
        // One attempt per kind of credential: libgit2 would otherwise loop forever.
        let key = allowed.bits();
        {
            let mut tries = auth.tries.lock().expect("lock");
            let n = tries.entry(key).or_insert(0);
            *n += 1;
            if *n > 1 {
                *auth.rejected.lock().expect("lock") = true;
                return Err(git2::Error::from_str("authentication rejected"));
            }
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(secret) = &remote.secret {
                let user = remote.username.as_deref().unwrap_or("x-access-token");
                return Cred::userpass_plaintext(user, secret);
            }
            if let Ok(cfg) = git2::Config::open_default() {
                if let Ok(c) = Cred::credential_helper(&cfg, url, user_from_url) {
                    return Ok(c);
                }
            }
            *auth.rejected.lock().expect("lock") = true;
            return Err(git2::Error::from_str(
                "the remote asks for credentials and none are configured",
            ));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user_from_url
                .or(remote.username.as_deref())
                .unwrap_or("git");
            if std::env::var_os("SSH_AUTH_SOCK").is_some() {
                return Cred::ssh_key_from_agent(user);
            }
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            for k in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let p = home.join(".ssh").join(k);
                if p.exists() {
                    return Cred::ssh_key(user, None, &p, None);
                }
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user_from_url.unwrap_or("git"));
        }
        *auth.rejected.lock().expect("lock") = true;
        Err(git2::Error::from_str("no usable credentials"))
    });
    cbs
}

fn proxy<'a>() -> git2::ProxyOptions<'a> {
    let mut p = git2::ProxyOptions::new();
    p.auto();
    p
}

fn git_err(remote: &Remote, what: &str, e: git2::Error) -> Error {
    let msg = remote.redact(e.message());
    if let Some(kind) = local_io_error(&msg) {
        return Error::Io {
            what: format!("{what}: {}", bounded(&[msg.as_str()], 1, ERROR_LINE_CHARS)),
            source: std::io::Error::from(kind),
        };
    }
    Error::Remote(format!("{what}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_secrets() {
        let r = Remote::parse("https://alice:s3cr%21t@example.com/org/repo.git").unwrap();
        assert_eq!(r.url, "https://example.com/org/repo.git");
        assert_eq!(r.secret.as_deref(), Some("s3cr!t"));
        let msg = format!(
            "failed https://alice:s3cr!t@example.com/x and s3cr!t and {}",
            base64(b"alice:s3cr!t")
        );
        let red = r.redact(&msg);
        assert!(
            !red.contains("s3cr!t") && !red.contains(&base64(b"alice:s3cr!t")),
            "{red}"
        );
        assert!(red.contains("https://***@example.com/x"), "{red}");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn knows_which_remotes_are_ssh() {
        for (spec, ssh) in [
            ("ssh://git@example.com/org/repo.git", true),
            ("SSH://git@example.com:2222/org/repo.git", true),
            ("git@github.com:org/repo.git", true),
            ("https://example.com/org/repo.git", false),
            ("git://example.com/repo.git", false),
            ("file:///srv/repo.git", false),
            ("/", false),
        ] {
            assert_eq!(Remote::parse(spec).unwrap().is_ssh(), ssh, "{spec}");
        }
    }

    #[test]
    fn cas_refspec_is_never_forced() {
        // A `+` would override the lease (issue 19).
        assert_eq!(cas_refspec("abc", "refs/tags/x"), "abc:refs/tags/x");
        assert!(!cas_refspec("abc", "refs/konductor/archive").starts_with('+'));
    }

    #[test]
    fn remote_helpers_are_refused_up_front() {
        for spec in [
            "ext::sh -c touch% /tmp/pwned",
            "ext::git-upload-pack /srv/x.git",
            "fd::3",
            "fd::0,1",
            "EXT::sh",
            "https::example.com/x.git",
            "foo+bar::x",
        ] {
            match Remote::parse(spec) {
                Err(Error::Input(m)) => assert!(m.contains("unsupported remote scheme"), "{m}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
        match Remote::parse("--upload-pack=touch /tmp/x:repo") {
            Err(Error::Input(m)) => assert!(m.contains("starts with `-`"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Not helpers: scp-like ssh, URLs with `::` later on.
        assert!(Remote::parse("git@example.com:app.git").is_ok());
        assert!(Remote::parse("ssh://example.com/a::b.git").is_ok());
        assert!(Remote::parse("https://example.com/a::b.git").is_ok());
    }

    #[test]
    fn bounded_keeps_error_text_short() {
        let many: Vec<String> = (0..20_000)
            .map(|i| {
                format!("cannot lock ref 'refs/tags/release=1.0=s{i}.1': No space left on device")
            })
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let b = bounded(&refs, ERROR_LINES, ERROR_LINE_CHARS);
        assert!(
            b.len() < ERROR_LINES * (ERROR_LINE_CHARS + 10) + 40,
            "{}",
            b.len()
        );
        assert!(b.ends_with("… (19995 more lines)"), "{b}");
        let long = "x".repeat(10_000);
        let b = bounded(&[long.as_str()], 5, 300);
        assert_eq!(b.chars().count(), 301);
        assert_eq!(bounded(&["a\u{1b}[31mred", "b"], 5, 300), "a?[31mred; b");
        assert_eq!(bounded(&[], 5, 300), "");
    }

    #[test]
    fn a_full_disk_is_a_local_error() {
        use std::io::ErrorKind;
        assert_eq!(
            local_io_error("fatal: write error: No space left on device"),
            Some(ErrorKind::StorageFull)
        );
        assert_eq!(
            local_io_error("unable to create temporary file: Read-only file system"),
            Some(ErrorKind::ReadOnlyFilesystem)
        );
        assert_eq!(local_io_error("Connection refused"), None);
        let r = Remote::parse("git://example.com/x.git").unwrap();
        let e = git_err(
            &r,
            "cannot create tag object",
            git2::Error::from_str("failed to write: No space left on device"),
        );
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::exit_codes::BAD_INPUT);
    }

    #[test]
    fn a_full_disk_on_the_server_is_the_remote_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            Remote::parse("git://example.com/x.git").unwrap(),
            CacheLocation::Dir(dir.path().join("cache")),
        )
        .unwrap();
        let theirs = "remote: fatal: write error: No space left on device\nfatal: remote error: disk full: No space left on device\n";
        assert!(matches!(
            store.classify(theirs, "cannot read tags from"),
            Error::Remote(_)
        ));
        let ours = "fatal: write error: No space left on device\nfatal: index-pack failed\n";
        match store.classify(ours, "cannot read tags from") {
            Error::Io { what, source } => {
                assert!(what.starts_with("cannot write the cache"), "{what}");
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
            }
            other => panic!("{other:?}"),
        }
        // git naming a file of the cache it could not write, without saying why.
        let lock = format!(
            "error: cannot update ref 'refs/tags/x': couldn't write '{}/repo.git/refs/tags/x.lock'\n",
            store.cache_dir().display()
        );
        assert!(matches!(
            store.classify(&lock, "cannot read tags from"),
            Error::Io { .. }
        ));
    }

    #[test]
    fn rejects_unknown_schemes() {
        assert!(matches!(Remote::parse("ftp://x/y"), Err(Error::Input(_))));
        assert!(matches!(
            Remote::parse("/no/such/path/at/all"),
            Err(Error::Remote(_))
        ));
    }
}

#[cfg(test)]
mod worktree_tests {
    use super::*;

    /// `make demo` from a linked worktree failed: the cache's alternates named the
    /// worktree's own git dir, which has no objects.
    #[test]
    fn cache_alternates_of_a_linked_worktree_name_the_main_objects() {
        let tmp = tempfile::tempdir().unwrap();
        let main = tmp.path().join("main");
        let run = |dir: &Path, args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@x")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@x")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        fs::create_dir_all(&main).unwrap();
        run(&main, &["init", "-q"]);
        run(&main, &["commit", "-q", "--allow-empty", "-m", "x"]);
        let wt = tmp.path().join("wt");
        run(&main, &["worktree", "add", "-q", wt.to_str().unwrap()]);
        let repo = Repository::discover(&wt).unwrap();
        let objects = common_dir(&repo).join("objects");
        assert_eq!(
            objects.canonicalize().unwrap(),
            main.join(".git/objects").canonicalize().unwrap()
        );
    }
}

#[cfg(test)]
mod tag_pack_tests {
    use super::*;
    use crate::git::wire::{fetch_after_look, Endpoint, Wants};

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@x")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@x")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The upload-pack conversation of a report without a checkout, against a real
    /// `git upload-pack`: the peeled lines give the tags' commit, and wanting the tag
    /// with that commit as `have` brings the tag object alone, which the indexer loads.
    #[test]
    fn wanting_a_tag_with_its_commit_as_have_brings_the_tag_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("r");
        fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        // 200 KB that don't compress: in the pack, they would show.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(repo.join("big"), noise).unwrap();
        git(&repo, &["add", "big"]);
        git(&repo, &["commit", "-q", "-m", "x"]);
        git(&repo, &["tag", "-a", "-m", "trigger", "release=1.0=a.1"]);
        git(&repo, &["tag", "-a", "-m", "other", "release=1.0=b.1"]);
        let commit = git(&repo, &["rev-parse", "HEAD"]);
        let tag = git(&repo, &["rev-parse", "release=1.0=a.1"]);
        let ep = Endpoint::Local(repo.clone());
        let trig = "refs/tags/release=1.0=a.1";
        let fetched = fetch_after_look(&ep, None, &|n| n.starts_with(trig), &mut |refs| {
            assert_eq!(refs.get(trig), Some(&tag));
            assert_eq!(refs.get(&format!("{trig}^{{}}")), Some(&commit));
            assert_eq!(refs.len(), 2, "{refs:?}");
            Wants {
                wants: vec![tag.clone()],
                haves: vec![commit.clone()],
            }
        })
        .unwrap();
        assert!(fetched.pack.len() < 1_000, "{} bytes", fetched.pack.len());
        let objects = Checkout::from_pack(&fetched.pack).unwrap();
        let rec = objects.tag_record("release=1.0=a.1", &tag, None).unwrap();
        assert_eq!(rec.commit, commit);
        assert!(rec.message.starts_with("trigger"), "{rec:?}");
        assert!(!objects.has_commit(&commit), "the commit was not sent");
        // Nothing wanted: the advertisement alone.
        let refs_only = fetch_after_look(&ep, None, &|n| n.starts_with(trig), &mut |_| {
            Wants::default()
        })
        .unwrap();
        assert!(refs_only.pack.is_empty());
        assert_eq!(refs_only.refs.len(), 2);
    }
}
