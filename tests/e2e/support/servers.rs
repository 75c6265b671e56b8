//! Real git servers on loopback for the end-to-end tests.
//!
//! Three kinds of remote, all serving a bare repository under a caller-owned root directory:
//!
//! - [`Kind::Bare`]: the bare repository's absolute path, used directly as the remote URL.
//! - [`Kind::Daemon`]: `git daemon` (`git://`) with anonymous pushes enabled.
//! - [`Kind::Http`]: `git http-backend` behind lighttpd (smart HTTP), guarded by basic auth.
//! - [`Kind::Ssh`]: OpenSSH's `sshd` with one authorized key ([`GitServer::ssh_client`]).
//!
//! Every bare repository is configured like a GitHub repository with a tag ruleset:
//! partial fetches and fetches by sha are allowed, push options are not advertised, and an
//! `update` hook makes Konductor's `release=*` tags immutable (create and delete are allowed,
//! moving an existing tag is rejected).
//!
//! Server processes and the git commands run here get a hermetic environment (see
//! [`hermetic`]). Each [`GitServer`] keeps its private files (logs, config, `HOME`) in a
//! temporary directory inside the caller's root; dropping the server kills its process. The
//! bare repository itself stays in the root, so several servers (one per kind, say) may serve
//! the same repository: start them with the same root and name.
//!
//! Commits made here all carry the same fixed author and committer date (see [`hermetic`]).

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::Duration;

use tempfile::TempDir;

/// Basic-auth user accepted by [`GitServer::start`] with [`Kind::Http`].
pub const HTTP_USER: &str = "alice";
/// Basic-auth password accepted by [`GitServer::start`] with [`Kind::Http`].
pub const HTTP_PASS: &str = "s3cret-token-123";

/// How often readiness is polled, and how long to wait between polls (about 10 s in all).
const READY_POLLS: u32 = 200;
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Attempts at starting a server on a fresh free port (another process may take the port
/// between our probe and the server's bind).
const START_ATTEMPTS: u32 = 3;

/// Fixed identity and dates, so commits made by the fixtures are reproducible.
const GIT_NAME: &str = "Konductor Tests";
const GIT_EMAIL: &str = "tests@konductor.invalid";
const GIT_DATE: &str = "2024-01-01T00:00:00Z";

/// `update` hook that makes `release=*` tags immutable, like a GitHub tag ruleset.
///
/// Arguments: ref name, old object id, new object id. An all-zero id means "absent".
const UPDATE_HOOK: &str = r#"#!/bin/sh
# Konductor test server: tags refs/tags/release=* are immutable.
# Creating (old id zero) and deleting (new id zero) are allowed; moving is rejected.
refname="$1"
oldrev="$2"
newrev="$3"
case "$refname" in
refs/tags/release=*)
	case "$oldrev" in
	*[!0]*)
		case "$newrev" in
		*[!0]*)
			echo "konductor test server: $refname is immutable; refusing to move it from $oldrev to $newrev" >&2
			exit 1
			;;
		esac
		;;
	esac
	;;
esac
exit 0
"#;

/// The kind of git remote a [`GitServer`] provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare repository addressed by its absolute path.
    Bare,
    /// `git daemon` on a loopback port (`git://`), pushes enabled.
    Daemon,
    /// `git http-backend` behind lighttpd on a loopback port (`http://`), basic auth required.
    Http,
    /// `sshd` on a loopback port (`ssh://`), public-key auth with the server's client key.
    Ssh,
}

/// What a client needs to reach a [`Kind::Ssh`] server: the authorized private key and the
/// server's host key line for `known_hosts`.
pub struct SshClient {
    /// The private key the server accepts.
    pub key: PathBuf,
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…`
    pub known_host: String,
}

/// A bare repository and, for [`Kind::Daemon`] and [`Kind::Http`], the server process in
/// front of it.
pub struct GitServer {
    /// What serves the repository.
    pub kind: Kind,
    /// The remote URL, without credentials (see [`GitServer::url_with_creds`]).
    pub url: String,
    /// Absolute path of the bare repository (`ROOT/NAME.git`).
    pub bare: PathBuf,
    /// How to (re)start the server process; `None` for [`Kind::Bare`].
    launch: Option<Launch>,
    /// The running server process, if any.
    child: Option<Child>,
    /// Private files: `HOME`, logs, server configuration, scratch work trees.
    state: TempDir,
}

/// Everything needed to start a server process again on the same port.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    /// Receives the process's stdout and stderr; truncated at each start.
    output_log: PathBuf,
    /// Further log files worth showing when the server fails (lighttpd's error log).
    extra_logs: Vec<PathBuf>,
}

impl GitServer {
    /// A bare repository served as a plain path (`url` is its absolute path).
    pub fn bare(root: &Path, name: &str) -> GitServer {
        let (bare, state) = create_bare(root, name);
        GitServer {
            kind: Kind::Bare,
            url: path_str(&bare).to_owned(),
            bare,
            launch: None,
            child: None,
            state,
        }
    }

    /// `git daemon` on a free loopback port with receive-pack enabled;
    /// `url` is `git://127.0.0.1:PORT/NAME.git`.
    pub fn daemon(root: &Path, name: &str) -> GitServer {
        let (bare, state) = create_bare(root, name);
        let base = path_str(bare.parent().expect("bare repository has a parent")).to_owned();
        let output_log = state.path().join("daemon.log");
        let (launch, child) = start_on_free_port(state.path(), |port| Launch {
            // Run git-daemon itself: `git daemon` forks it as a child, which would survive
            // killing the `git` wrapper.
            program: git_exec_path().join("git-daemon"),
            args: vec![
                "--reuseaddr".to_owned(),
                "--informative-errors".to_owned(),
                "--listen=127.0.0.1".to_owned(),
                format!("--port={port}"),
                format!("--base-path={base}"),
                "--export-all".to_owned(),
                "--enable=receive-pack".to_owned(),
                base.clone(),
            ],
            port,
            output_log: output_log.clone(),
            extra_logs: Vec::new(),
        });
        GitServer {
            kind: Kind::Daemon,
            url: format!("git://127.0.0.1:{}/{name}.git", launch.port),
            bare,
            launch: Some(launch),
            child: Some(child),
            state,
        }
    }

    /// `git http-backend` behind lighttpd on a free loopback port, pushes enabled. The whole
    /// `/git` URL space (fetch and push) requires basic auth as `user`/`pass`;
    /// `url` is `http://127.0.0.1:PORT/git/NAME.git` (no credentials in it).
    pub fn http(root: &Path, name: &str, user: &str, pass: &str) -> GitServer {
        assert!(
            !user.contains(':') && !user.contains('\n') && !pass.contains('\n'),
            "basic-auth user must not contain ':' or newlines, password no newlines"
        );
        let (bare, state) = create_bare(root, name);
        let dir = state.path();
        let project_root = bare.parent().expect("bare repository has a parent");
        for sub in ["docroot", "upload"] {
            fs::create_dir(dir.join(sub)).expect("create lighttpd directory");
        }
        let users = dir.join("users");
        fs::write(&users, format!("{user}:{pass}\n")).expect("write lighttpd user file");
        let error_log = dir.join("lighttpd-error.log");
        let conf = dir.join("lighttpd.conf");
        let output_log = dir.join("lighttpd.out");
        let program = lighttpd();
        let (launch, child) = start_on_free_port(dir, |port| {
            let text = lighttpd_conf(&LighttpdConf {
                port,
                docroot: &dir.join("docroot"),
                upload: &dir.join("upload"),
                error_log: &error_log,
                users: &users,
                backend: &git_exec_path().join("git-http-backend"),
                project_root,
                home: &dir.join("home"),
            });
            fs::write(&conf, text).expect("write lighttpd.conf");
            Launch {
                program: program.clone(),
                args: vec!["-D".to_owned(), "-f".to_owned(), path_str(&conf).to_owned()],
                port,
                output_log: output_log.clone(),
                extra_logs: vec![error_log.clone()],
            }
        });
        GitServer {
            kind: Kind::Http,
            url: format!("http://127.0.0.1:{}/git/{name}.git", launch.port),
            bare,
            launch: Some(launch),
            child: Some(child),
            state,
        }
    }

    /// OpenSSH's `sshd` on a free loopback port: public-key auth only, for the user running
    /// the tests, with the key of [`GitServer::ssh_client`];
    /// `url` is `ssh://USER@127.0.0.1:PORT/ROOT/NAME.git`.
    pub fn ssh(root: &Path, name: &str) -> GitServer {
        let (bare, state) = create_bare(root, name);
        let dir = state.path();
        let keygen = |file: &str| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", file, "-f"])
                .arg(dir.join(file)));
        };
        keygen("host_key");
        keygen("client_key");
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
            .expect("write authorized_keys");
        // sshd started as root needs its privilege separation directory.
        if is_root() {
            fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        }
        let conf = dir.join("sshd_config");
        let output_log = dir.join("sshd.log");
        let program = sshd();
        let (launch, child) = start_on_free_port(dir, |port| {
            let text = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
                 AuthorizedKeysFile {ak}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding no\nX11Forwarding no\nAcceptEnv GIT_PROTOCOL\n\
                 SetEnv GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1\nLogLevel ERROR\n",
                hk = path_str(&dir.join("host_key")),
                pid = path_str(&dir.join("sshd.pid")),
                ak = path_str(&dir.join("authorized_keys")),
            );
            fs::write(&conf, text).expect("write sshd_config");
            Launch {
                program: program.clone(),
                args: vec![
                    "-D".to_owned(),
                    "-e".to_owned(),
                    "-f".to_owned(),
                    path_str(&conf).to_owned(),
                ],
                port,
                output_log: output_log.clone(),
                extra_logs: Vec::new(),
            }
        });
        let user = run(Command::new("id").arg("-un")).trim().to_owned();
        GitServer {
            kind: Kind::Ssh,
            url: format!("ssh://{user}@127.0.0.1:{}{}", launch.port, path_str(&bare)),
            bare,
            launch: Some(launch),
            child: Some(child),
            state,
        }
    }

    /// For [`Kind::Ssh`]: the client key the server accepts and its `known_hosts` line.
    pub fn ssh_client(&self) -> Option<SshClient> {
        let launch = self.launch.as_ref().filter(|_| self.kind == Kind::Ssh)?;
        let dir = self.state.path();
        let host = fs::read_to_string(dir.join("host_key.pub")).expect("read host key");
        let mut parts = host.split_whitespace();
        Some(SshClient {
            key: dir.join("client_key"),
            known_host: format!(
                "[127.0.0.1]:{} {} {}",
                launch.port,
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            ),
        })
    }

    /// Start a server of the given kind; [`Kind::Http`] uses [`HTTP_USER`] and [`HTTP_PASS`].
    pub fn start(kind: Kind, root: &Path, name: &str) -> GitServer {
        match kind {
            Kind::Bare => GitServer::bare(root, name),
            Kind::Daemon => GitServer::daemon(root, name),
            Kind::Http => GitServer::http(root, name, HTTP_USER, HTTP_PASS),
            Kind::Ssh => GitServer::ssh(root, name),
        }
    }

    /// The URL with `user:pass@` inserted (percent-encoded) for [`Kind::Http`]; other kinds
    /// return the URL unchanged.
    pub fn url_with_creds(&self, user: &str, pass: &str) -> String {
        match (self.kind, self.url.strip_prefix("http://")) {
            (Kind::Http, Some(rest)) => format!(
                "http://{}:{}@{rest}",
                percent_encode(user),
                percent_encode(pass)
            ),
            _ => self.url.clone(),
        }
    }

    /// Stop the server process (for fault tests). A no-op for [`Kind::Bare`] and for a
    /// server already stopped. Returns once the port can be bound again (bounded wait), so
    /// [`GitServer::start_again`] can reuse it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
            if let Some(launch) = &self.launch {
                wait_port_free(launch.port);
            }
        }
    }

    /// Restart a stopped server on the same port, so [`GitServer::url`] stays valid. A no-op
    /// for [`Kind::Bare`] and for a server that is running. Panics if the server does not come
    /// up (for instance because another process took the port meanwhile).
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        if let Some(launch) = &self.launch {
            match spawn_ready(launch, &self.home()) {
                Ok(child) => self.child = Some(child),
                Err(message) => panic!("restarting {:?} server failed: {message}", self.kind),
            }
        }
    }

    /// Run `git` in the bare repository (for example `["tag", "--list"]`); returns stdout.
    /// Panics with stderr if git fails.
    pub fn git(&self, args: &[&str]) -> String {
        let mut cmd = git_cmd(&self.home());
        cmd.arg("-C").arg(&self.bare).args(args);
        run(&mut cmd)
    }

    /// All tag names (without `refs/tags/`) in the bare repository, sorted.
    pub fn tags(&self) -> Vec<String> {
        let out = self.git(&["for-each-ref", "--format=%(refname:strip=2)", "refs/tags/"]);
        let mut tags: Vec<String> = out.lines().map(str::to_owned).collect();
        tags.sort();
        tags
    }

    /// The `HOME` used for this server's processes and git commands.
    fn home(&self) -> PathBuf {
        self.state.path().join("home")
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
    }
}

/// Run `git -C DIR ARGS` with `input` on its stdin; its stdout, trimmed. Panics if git fails.
pub fn git_stdin(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_COMMITTER_NAME", "Mallory")
        .env("GIT_COMMITTER_EMAIL", "mallory@example.com")
        .env("GIT_AUTHOR_NAME", "Mallory")
        .env("GIT_AUTHOR_EMAIL", "mallory@example.com")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run git");
    let mut stdin = child.stdin.take().expect("piped");
    let data = input.to_vec();
    // Write from another thread: git may fill its stdout before reading all its input.
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("wait for git");
    writer.join().expect("writer").expect("write to git");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Create a commit with `files` (path, content) on top of `refs/heads/main` (or as a root
/// commit if there is none) and push it to the bare repository's `refs/heads/main` through
/// its path (so the hook runs). Returns the commit's 40-hex sha.
pub fn commit_files(server: &GitServer, files: &[(&str, &str)], message: &str) -> String {
    let home = server.home();
    let work = tempfile::Builder::new()
        .prefix("work-")
        .tempdir_in(server.state.path())
        .expect("create scratch work tree");
    let work = work.path();
    let bare = path_str(&server.bare);
    let git = |args: &[&str]| {
        let mut cmd = git_cmd(&home);
        cmd.arg("-C").arg(work).args(args);
        run(&mut cmd)
    };
    git(&["init", "--quiet", "--initial-branch=main"]);
    let has_main = git_cmd(&home)
        .arg("-C")
        .arg(&server.bare)
        .args(["rev-parse", "--verify", "--quiet", "refs/heads/main"])
        .stdout(Stdio::null())
        .status()
        .expect("run git rev-parse")
        .success();
    if has_main {
        git(&["fetch", "--quiet", bare, "refs/heads/main"]);
        git(&["reset", "--quiet", "--hard", "FETCH_HEAD"]);
    }
    for (path, content) in files {
        let file = work.join(path);
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).expect("create directories for file");
        }
        fs::write(&file, content).expect("write file");
    }
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "--allow-empty", "-m", message]);
    git(&["push", "--quiet", bare, "HEAD:refs/heads/main"]);
    git(&["rev-parse", "HEAD"]).trim().to_owned()
}

/// Apply a hermetic environment to `cmd`: clear it, then set `PATH` (inherited), `HOME`,
/// `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`, `GIT_TERMINAL_PROMPT=0`,
/// `LC_ALL=C`, `TZ=UTC`, and fixed author/committer names, emails and dates.
pub fn hermetic<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("GIT_AUTHOR_NAME", GIT_NAME)
        .env("GIT_AUTHOR_EMAIL", GIT_EMAIL)
        .env("GIT_AUTHOR_DATE", GIT_DATE)
        .env("GIT_COMMITTER_NAME", GIT_NAME)
        .env("GIT_COMMITTER_EMAIL", GIT_EMAIL)
        .env("GIT_COMMITTER_DATE", GIT_DATE)
}

/// Create `ROOT/NAME.git` (configured, with the update hook) and the server's private
/// state directory inside `root`.
fn create_bare(root: &Path, name: &str) -> (PathBuf, TempDir) {
    assert!(
        !name.is_empty() && !name.contains(['/', '"', '\\', '\n']) && !name.ends_with(".git"),
        "invalid repository name {name:?}"
    );
    let root = std::path::absolute(root).expect("absolute root path");
    assert!(
        !path_str(&root).contains(['"', '\\', '\n']),
        "root path {root:?} must not contain quotes, backslashes or newlines"
    );
    fs::create_dir_all(&root).expect("create root directory");
    let state = tempfile::Builder::new()
        .prefix(&format!(".server-{name}-"))
        .tempdir_in(&root)
        .expect("create server state directory");
    let home = state.path().join("home");
    fs::create_dir(&home).expect("create server HOME");

    let bare = root.join(format!("{name}.git"));
    run(hermetic(&mut Command::new("git"), &home)
        .args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(&bare));
    for (key, value) in [
        ("uploadpack.allowFilter", "true"),
        ("uploadpack.allowAnySHA1InWant", "true"),
        ("http.receivepack", "true"),
        ("receive.advertisePushOptions", "false"),
    ] {
        run(git_cmd(&home)
            .arg("-C")
            .arg(&bare)
            .args(["config", key, value]));
    }
    let hooks = bare.join("hooks");
    fs::create_dir_all(&hooks).expect("create hooks directory");
    let hook = hooks.join("update");
    fs::write(&hook, UPDATE_HOOK).expect("write update hook");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod update hook");
    (bare, state)
}

/// Start a server on a free loopback port, retrying with another port if it fails.
fn start_on_free_port(state: &Path, mut launch_for: impl FnMut(u16) -> Launch) -> (Launch, Child) {
    let home = state.join("home");
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let launch = launch_for(free_port());
        match spawn_ready(&launch, &home) {
            Ok(child) => return (launch, child),
            Err(message) => failures.push(message),
        }
    }
    panic!(
        "server did not start after {START_ATTEMPTS} attempts:\n{}",
        failures.join("\n---\n")
    );
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Spawn the server and wait until its port accepts connections. On failure the process is
/// reaped and the error describes why, with its logs.
fn spawn_ready(launch: &Launch, home: &Path) -> Result<Child, String> {
    let log = File::create(&launch.output_log).expect("create server log");
    let log2 = log.try_clone().expect("clone server log handle");
    let mut cmd = Command::new(&launch.program);
    hermetic(&mut cmd, home)
        .args(&launch.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", launch.program))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, launch.port));
    for _ in 0..READY_POLLS {
        if let Some(status) = child.try_wait().expect("poll server process") {
            return Err(format!(
                "{:?} exited ({status}) before listening on port {}\n{}",
                launch.program,
                launch.port,
                logs(launch)
            ));
        }
        // Another process may hold the port (ours then fails to bind and exits): only a
        // listening socket owned by our process counts.
        if owns_listener(child.id(), launch.port) != Some(false)
            && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        {
            return Ok(child);
        }
        sleep(READY_POLL_INTERVAL);
    }
    kill_and_wait(&mut child);
    Err(format!(
        "{:?} did not listen on port {} in time\n{}",
        launch.program,
        launch.port,
        logs(launch)
    ))
}

/// Whether process `pid` holds a listening TCP socket on loopback `port`, from Linux's
/// `/proc`; `None` where `/proc/net/tcp` is unavailable.
fn owns_listener(pid: u32, port: u16) -> Option<bool> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    // Columns: sl, local_address (HEXIP:HEXPORT), rem_address, st (0A = LISTEN), tx:rx,
    // tr:when, retrnsmt, uid, timeout, inode.
    let port_suffix = format!(":{port:04X}");
    let sockets: Vec<PathBuf> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() > 9 && cols[1].ends_with(&port_suffix) && cols[3] == "0A")
                .then(|| PathBuf::from(format!("socket:[{}]", cols[9])))
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Some(false);
    };
    Some(
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| sockets.contains(&target))),
    )
}

/// Wait (bounded) until `port` can be bound on loopback. After git-daemon is killed the
/// port has been seen busy for a few milliseconds more (presumably a connection child
/// forked but not yet exec'd, which still holds the listening socket).
fn wait_port_free(port: u16) {
    for _ in 0..READY_POLLS {
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        sleep(READY_POLL_INTERVAL);
    }
}

/// The contents of a server's log files, for panic messages.
fn logs(launch: &Launch) -> String {
    std::iter::once(&launch.output_log)
        .chain(&launch.extra_logs)
        .map(|path| {
            let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
            format!("== {} ==\n{text}", path.display())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kill (SIGKILL) and reap a server process.
fn kill_and_wait(child: &mut Child) {
    // kill() fails only if the process was already reaped; wait() then reports that too.
    let _ = child.kill();
    let _ = child.wait();
}

/// The paths and settings written into a lighttpd configuration.
struct LighttpdConf<'a> {
    port: u16,
    docroot: &'a Path,
    upload: &'a Path,
    error_log: &'a Path,
    users: &'a Path,
    backend: &'a Path,
    project_root: &'a Path,
    home: &'a Path,
}

fn lighttpd_conf(c: &LighttpdConf<'_>) -> String {
    let port = c.port;
    let docroot = path_str(c.docroot);
    let upload = path_str(c.upload);
    let error_log = path_str(c.error_log);
    let users = path_str(c.users);
    let backend = path_str(c.backend);
    let project_root = path_str(c.project_root);
    let home = path_str(c.home);
    // mod_auth must come before mod_cgi. lighttpd sets REMOTE_USER for the CGI after basic
    // auth, which git http-backend requires for receive-pack. Running as root needs no
    // server.username (checked with lighttpd 1.4.69).
    format!(
        r#"server.modules = ( "mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi" )
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{docroot}"
server.upload-dirs = ( "{upload}" )
server.errorlog = "{error_log}"
alias.url = ( "/git" => "{backend}" )
cgi.assign = ( "" => "" )
setenv.set-environment = (
  "GIT_PROJECT_ROOT" => "{project_root}",
  "GIT_HTTP_EXPORT_ALL" => "1",
  "GIT_CONFIG_GLOBAL" => "/dev/null",
  "GIT_CONFIG_NOSYSTEM" => "1",
  "HOME" => "{home}",
)
auth.backend = "plain"
auth.backend.plain.userfile = "{users}"
auth.require = ( "/git" => (
  "method" => "basic",
  "realm" => "konductor-tests",
  "require" => "valid-user",
) )
"#
    )
}

/// The lighttpd binary: from `PATH`, else the usual sbin directories.
fn lighttpd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("lighttpd"))
        .find(|candidate| candidate.is_file())
        .expect("lighttpd not found (install it: apt-get install lighttpd)")
}

fn sshd() -> PathBuf {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .map(PathBuf::from)
        .into_iter()
        .find(|candidate| candidate.is_file())
        .expect("sshd not found (install it: apt-get install openssh-server)")
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// A `GIT_SSH_COMMAND`: OpenSSH with only `key`, checking host keys against
/// `known_hosts`, never prompting.
pub fn ssh_command(key: &Path, known_hosts: &Path) -> String {
    format!(
        "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o BatchMode=yes",
        path_str(key),
        path_str(known_hosts)
    )
}

/// `$(git --exec-path)`: where git-daemon and git-http-backend live.
fn git_exec_path() -> &'static Path {
    static EXEC_PATH: OnceLock<PathBuf> = OnceLock::new();
    EXEC_PATH.get_or_init(|| {
        let home = std::env::temp_dir();
        let out = run(hermetic(&mut Command::new("git"), &home).arg("--exec-path"));
        PathBuf::from(out.trim())
    })
}

/// A hermetic `git` command.
fn git_cmd(home: &Path) -> Command {
    let mut cmd = Command::new("git");
    hermetic(&mut cmd, home);
    cmd
}

/// Run a command; return its stdout, or panic with its stderr if it fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("command output is UTF-8")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("path is UTF-8")
}

/// Percent-encode everything but RFC 3986 unreserved characters (for URL userinfo).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Self-tests: each kind of server really serves fetches and pushes, and enforces what
    //! the end-to-end tests rely on.

    use super::*;
    use std::process::Output;

    const ALL: [Kind; 4] = [Kind::Bare, Kind::Daemon, Kind::Http, Kind::Ssh];

    /// A client side: a `HOME` and a place for clones, inside the test's root.
    struct Client {
        root: TempDir,
        /// `GIT_SSH_COMMAND` once the client trusts an ssh server.
        ssh: std::cell::OnceCell<String>,
    }

    impl Client {
        fn new() -> Client {
            let root = tempfile::tempdir().expect("create test root");
            fs::create_dir(root.path().join("client-home")).expect("create client HOME");
            Client {
                root,
                ssh: std::cell::OnceCell::new(),
            }
        }

        /// For an ssh server: use its client key and trust its host key.
        fn trust(&self, server: &GitServer) {
            if let Some(c) = server.ssh_client() {
                let known = self.root().join("known_hosts");
                fs::write(&known, format!("{}\n", c.known_host)).expect("write known_hosts");
                self.ssh
                    .set(ssh_command(&c.key, &known))
                    .expect("one ssh server per client");
            }
        }

        fn root(&self) -> &Path {
            self.root.path()
        }

        /// Run git in `dir` (relative to the root); return the raw output.
        fn git(&self, dir: &str, args: &[&str]) -> Output {
            self.git_with_env(dir, &[], args)
        }

        /// Run git in `dir` with extra environment variables; return the raw output.
        fn git_with_env(&self, dir: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
            let mut cmd = Command::new("git");
            hermetic(&mut cmd, &self.root().join("client-home"));
            if let Some(ssh) = self.ssh.get() {
                cmd.env("GIT_SSH_COMMAND", ssh);
            }
            cmd.envs(env.iter().copied())
                .current_dir(self.root().join(dir))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("run git")
        }

        /// Run git and require success; return stdout.
        fn ok(&self, dir: &str, args: &[&str]) -> String {
            let out = self.git(dir, args);
            assert!(
                out.status.success(),
                "git {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).expect("UTF-8 output")
        }

        /// Run git and require failure; return stderr.
        fn fails(&self, dir: &str, args: &[&str]) -> String {
            let out = self.git(dir, args);
            assert!(!out.status.success(), "git {args:?} unexpectedly succeeded");
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    }

    /// The URL a client with the right credentials uses.
    fn authed_url(server: &GitServer) -> String {
        server.url_with_creds(HTTP_USER, HTTP_PASS)
    }

    fn clone_fetch_push(kind: Kind) {
        let client = Client::new();
        let server = GitServer::start(kind, &client.root().join("srv"), "repo");
        client.trust(&server);
        assert_eq!(server.kind, kind);
        assert!(server.bare.is_absolute() && server.bare.ends_with("srv/repo.git"));
        let url = authed_url(&server);
        match kind {
            Kind::Bare => assert_eq!(url, path_str(&server.bare)),
            Kind::Daemon => assert!(url.starts_with("git://127.0.0.1:") && url == server.url),
            Kind::Ssh => assert!(url.starts_with("ssh://") && url.ends_with("/srv/repo.git")),
            Kind::Http => {
                assert!(server.url.starts_with("http://127.0.0.1:"));
                assert!(server.url.ends_with("/git/repo.git"));
                assert_eq!(
                    url,
                    server
                        .url
                        .replace("http://", "http://alice:s3cret-token-123@")
                );
            }
        }

        let first = commit_files(
            &server,
            &[("README", "hello\n"), ("a/b/c.txt", "c\n")],
            "one",
        );
        assert_eq!(first.len(), 40);
        assert_eq!(server.git(&["rev-parse", "refs/heads/main"]).trim(), first);

        client.ok("", &["clone", "--quiet", &url, "clone"]);
        assert_eq!(client.ok("clone", &["rev-parse", "HEAD"]).trim(), first);
        assert_eq!(
            fs::read_to_string(client.root().join("clone/a/b/c.txt")).unwrap(),
            "c\n"
        );

        // A second commit lands on top of the first; the clone fetches it.
        let second = commit_files(&server, &[("README", "hello again\n")], "two");
        assert_eq!(
            server.git(&["rev-parse", &format!("{second}^")]).trim(),
            first
        );
        client.ok("clone", &["fetch", "--quiet", "origin"]);
        assert_eq!(
            client.ok("clone", &["rev-parse", "origin/main"]).trim(),
            second
        );

        // Push a lightweight and an annotated tag.
        client.ok("clone", &["tag", "release=1.0", &first]);
        client.ok(
            "clone",
            &[
                "tag",
                "-a",
                "-m",
                "started",
                "release=1.0=unit-tests.1",
                &second,
            ],
        );
        client.ok("clone", &["push", "--quiet", "origin", "--tags"]);
        assert_eq!(server.tags(), ["release=1.0", "release=1.0=unit-tests.1"]);
        assert_eq!(server.git(&["rev-parse", "release=1.0"]).trim(), first);

        // Protocol v2 works through this transport (ref-prefix filtering depends on it).
        let out = client.git_with_env(
            "",
            &[("GIT_TRACE_PACKET", "1")],
            &["-c", "protocol.version=2", "ls-remote", &url, "refs/tags/"],
        );
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("< version 2"),
            "no protocol v2 over {kind:?}"
        );

        // Partial fetch of one commit (uploadpack.allowFilter) into an empty repository.
        // (A named remote: with a bare path as URL, git cannot record the promisor remote.)
        client.ok("", &["init", "--quiet", "--bare", "partial.git"]);
        client.ok("partial.git", &["remote", "add", "origin", &url]);
        client.ok(
            "partial.git",
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--depth=1",
                "--filter=tree:0",
                "origin",
                "refs/tags/release=1.0:refs/tags/release=1.0",
            ],
        );
        assert_eq!(
            client
                .ok("partial.git", &["rev-parse", "release=1.0"])
                .trim(),
            first
        );
        let objects = client.ok(
            "partial.git",
            &["rev-list", "--objects", "--missing=print", "release=1.0"],
        );
        assert!(
            objects.lines().any(|line| line.starts_with('?')),
            "the filter was ignored over {kind:?}:\n{objects}"
        );

        // Fetch by sha (uploadpack.allowAnySHA1InWant) of a commit no ref points to directly.
        client.ok("", &["init", "--quiet", "--bare", "bysha.git"]);
        client.ok("bysha.git", &["fetch", "--quiet", &url, &first]);
        client.ok(
            "bysha.git",
            &["cat-file", "-e", &format!("{first}^{{commit}}")],
        );
    }

    #[test]
    fn bare_serves_fetch_and_push() {
        clone_fetch_push(Kind::Bare);
    }

    #[test]
    fn daemon_serves_fetch_and_push() {
        clone_fetch_push(Kind::Daemon);
    }

    #[test]
    fn http_serves_fetch_and_push() {
        clone_fetch_push(Kind::Http);
    }

    #[test]
    fn ssh_serves_fetch_and_push() {
        clone_fetch_push(Kind::Ssh);
    }

    #[test]
    fn http_requires_the_right_credentials() {
        let client = Client::new();
        let server = GitServer::http(&client.root().join("srv"), "repo", "bob", "p@ss:w/rd");
        let sha = commit_files(&server, &[("f", "x\n")], "one");
        assert_eq!(
            client.ok(
                "",
                &["ls-remote", &server.url_with_creds("bob", "p@ss:w/rd")]
            ),
            format!("{sha}\tHEAD\n{sha}\trefs/heads/main\n")
        );

        let wrong = server.url_with_creds("bob", "wrong");
        let err = client.fails("", &["ls-remote", &wrong]);
        assert!(err.contains("Authentication failed"), "{err}");
        let err = client.fails("", &["ls-remote", &server.url]);
        assert!(err.contains("could not read Username"), "{err}");
        let err = client.fails(
            "",
            &["ls-remote", &server.url_with_creds(HTTP_USER, HTTP_PASS)],
        );
        assert!(err.contains("Authentication failed"), "{err}");

        // Pushing without credentials, or with wrong ones, changes nothing.
        client.ok("", &["init", "--quiet", "local"]);
        client.ok(
            "local",
            &[
                "fetch",
                "--quiet",
                &server.url_with_creds("bob", "p@ss:w/rd"),
                "main",
            ],
        );
        client.ok("local", &["tag", "release=9.0", "FETCH_HEAD"]);
        client.fails("local", &["push", &server.url, "release=9.0"]);
        client.fails("local", &["push", &wrong, "release=9.0"]);
        assert!(server.tags().is_empty());
    }

    #[test]
    fn update_hook_makes_release_tags_immutable() {
        for kind in ALL {
            let client = Client::new();
            let server = GitServer::start(kind, &client.root().join("srv"), "repo");
            client.trust(&server);
            let url = authed_url(&server);
            let a = commit_files(&server, &[("f", "a\n")], "a");
            let b = commit_files(&server, &[("f", "b\n")], "b");
            client.ok("", &["clone", "--quiet", &url, "clone"]);

            // Creating is allowed.
            client.ok("clone", &["tag", "release=1.0", &a]);
            client.ok("clone", &["tag", "other", &a]);
            client.ok(
                "clone",
                &["push", "--quiet", "origin", "release=1.0", "other"],
            );
            assert_eq!(server.tags(), ["other", "release=1.0"]);

            // Moving a release tag is rejected, even forced; other tags may move.
            client.ok("clone", &["tag", "--force", "release=1.0", &b]);
            client.ok("clone", &["tag", "--force", "other", &b]);
            let err = client.fails("clone", &["push", "--force", "origin", "release=1.0"]);
            assert!(err.contains("hook declined"), "{kind:?}: {err}");
            assert_eq!(
                server.git(&["rev-parse", "release=1.0"]).trim(),
                a,
                "{kind:?}"
            );
            client.ok("clone", &["push", "--quiet", "--force", "origin", "other"]);
            assert_eq!(server.git(&["rev-parse", "other"]).trim(), b);

            // Branches may be rewound.
            client.ok(
                "clone",
                &[
                    "push",
                    "--quiet",
                    "--force",
                    "origin",
                    &format!("{a}:refs/heads/main"),
                ],
            );
            assert_eq!(server.git(&["rev-parse", "main"]).trim(), a);

            // Creating another release tag and deleting one are allowed.
            client.ok("clone", &["tag", "release=2.0", &b]);
            client.ok("clone", &["push", "--quiet", "origin", "release=2.0"]);
            client.ok(
                "clone",
                &["push", "--quiet", "origin", ":refs/tags/release=1.0"],
            );
            assert_eq!(server.tags(), ["other", "release=2.0"], "{kind:?}");
        }
    }

    #[test]
    fn stop_and_start_again_keep_the_url() {
        for kind in ALL {
            let client = Client::new();
            let mut server = GitServer::start(kind, &client.root().join("srv"), "repo");
            client.trust(&server);
            let sha = commit_files(&server, &[("f", "x\n")], "one");
            let url = authed_url(&server);
            let before = server.url.clone();
            assert!(client.ok("", &["ls-remote", &url]).contains(&sha));

            server.stop();
            server.stop(); // Idempotent.
            if kind == Kind::Bare {
                client.ok("", &["ls-remote", &url]);
            } else {
                client.fails("", &["ls-remote", &url]);
            }

            server.start_again();
            server.start_again(); // A no-op while running.
            assert_eq!(server.url, before);
            assert!(client.ok("", &["ls-remote", &url]).contains(&sha));
        }
    }

    /// A server that cannot bind its port fails loudly instead of passing off another
    /// process's listener as its own.
    fn restart_on_taken_port(kind: Kind) {
        let client = Client::new();
        let mut server = GitServer::start(kind, &client.root().join("srv"), "repo");
        client.trust(&server);
        server.stop();
        let port = server.launch.as_ref().expect("a server process").port;
        let _squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("take the port");
        server.start_again();
    }

    #[test]
    #[should_panic(expected = "restarting Daemon server failed")]
    fn daemon_restart_on_a_taken_port_panics() {
        restart_on_taken_port(Kind::Daemon);
    }

    #[test]
    #[should_panic(expected = "restarting Http server failed")]
    fn http_restart_on_a_taken_port_panics() {
        restart_on_taken_port(Kind::Http);
    }

    #[test]
    fn servers_share_a_root_and_clean_up() {
        let client = Client::new();
        let root = client.root().join("srv");
        let one = GitServer::daemon(&root, "one");
        let two = GitServer::http(&root, "two", HTTP_USER, HTTP_PASS);
        assert_ne!(one.url, two.url);
        // The daemon serves every repository under the root, but each URL names its own.
        commit_files(&one, &[("f", "1\n")], "one");
        commit_files(&two, &[("f", "2\n")], "two");
        let ls_one = client.ok("", &["ls-remote", &one.url, "main"]);
        let ls_two = client.ok("", &["ls-remote", &authed_url(&two), "main"]);
        assert_ne!(ls_one, ls_two);
        // Another server for the same repository sees the same refs.
        let one_again = GitServer::bare(&root, "one");
        assert_eq!(one_again.bare, one.bare);
        assert_eq!(
            client.ok("", &["ls-remote", &one_again.url, "main"]),
            ls_one
        );
        drop(one_again);
        let state = two.state.path().to_owned();
        let ports = [&one, &two].map(|s| s.launch.as_ref().expect("a server process").port);
        drop(one);
        drop(two);
        assert!(!state.exists(), "state directory removed on drop");
        for port in ports {
            assert!(
                TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
                "port {port} still answers after drop"
            );
        }
    }
}
