//! A hermetic environment per test: a server, a cache, and helpers to run the binaries.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

use crate::support::servers::{
    commit_files, hermetic, ssh_command, GitServer, Kind, HTTP_PASS, HTTP_USER,
};

/// A small graph that exercises ordering, failure and retries quickly.
pub const SMALL_SDD: &str = "\
a: []
b: []
c: {needs: [a, b], retries: 0}
d: [c]
done: {needs: [d], virtual: true}
";

/// What a command printed, and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Out {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "expected `{needle}` in stderr:\n{}",
            self.stderr
        );
        self
    }
}

pub struct Env {
    pub root: TempDir,
    pub server: GitServer,
    pub home: PathBuf,
    pub sha: String,
    pub cache: PathBuf,
}

impl Env {
    pub fn new(kind: Kind, sdd: &str) -> Env {
        Env::with_files(kind, &[("sdd.yaml", sdd), ("flavors.yaml", "serving: 1\n")])
    }

    pub fn with_files(kind: Kind, files: &[(&str, &str)]) -> Env {
        let root = tempfile::Builder::new()
            .prefix("konductor-e2e-")
            .tempdir()
            .expect("tempdir");
        let server = GitServer::start(kind, root.path(), "origin");
        let sha = commit_files(&server, files, "first");
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        if let Some(client) = server.ssh_client() {
            // Where libgit2 looks ($HOME/.ssh); the git CLI gets GIT_SSH_COMMAND (see cmd).
            let ssh = home.join(".ssh");
            std::fs::create_dir_all(&ssh).unwrap();
            std::fs::copy(&client.key, ssh.join("id_ed25519")).unwrap();
            std::fs::write(ssh.join("known_hosts"), format!("{}\n", client.known_host)).unwrap();
        }
        let cache = root.path().join("cache");
        Env {
            server,
            home,
            sha,
            cache,
            root,
        }
    }

    /// A command with the hermetic environment and this env's remote and cache.
    pub fn cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin(bin));
        hermetic(&mut c, &self.home);
        c.current_dir(self.root.path())
            .env("KONDUCTOR_REMOTE", &self.server.url)
            .env("KONDUCTOR_CACHE_DIR", &self.cache)
            .env("KONDUCTOR_IDENTITY", "Test Runner <runner@example.com>");
        if self.server.kind == Kind::Http {
            c.env("KONDUCTOR_USERNAME", HTTP_USER)
                .env("KONDUCTOR_TOKEN", HTTP_PASS);
        }
        if self.server.kind == Kind::Ssh {
            c.env("GIT_SSH_COMMAND", self.ssh_command());
        }
        c
    }

    /// For ssh: the OpenSSH client, with this env's key and `known_hosts`, non-interactive.
    pub fn ssh_command(&self) -> String {
        let ssh = self.home.join(".ssh");
        ssh_command(&ssh.join("id_ed25519"), &ssh.join("known_hosts"))
    }

    pub fn run(&self, bin: &str, args: &[&str]) -> Out {
        self.run_cmd(self.cmd(bin).args(args))
    }

    pub fn run_cmd(&self, c: &mut Command) -> Out {
        let o = c.output().expect("run binary");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn k(&self, args: &[&str]) -> Out {
        self.run("konductor", args)
    }

    pub fn l(&self, args: &[&str]) -> Out {
        self.run("locomotive", args)
    }

    pub fn start(&self) -> String {
        self.k(&["start", "--sha", &self.sha])
            .ok()
            .trim()
            .to_string()
    }

    pub fn tick(&self, train: &str) -> String {
        self.k(&["tick", "--train", train]).ok()
    }

    /// Report a state for a trigger tag, as a CI job would.
    pub fn report(&self, tag: &str, state: &str) -> Out {
        let sha = self
            .server
            .git(&["rev-parse", &format!("refs/tags/{tag}^{{commit}}")])
            .trim()
            .to_string();
        self.l(&[
            "set-step-state",
            "--state-name",
            state,
            "--triggering-tag",
            tag,
            "--info-string",
            &format!("job_url:https://ci.example.com/{}", tag.replace('=', "/")),
            "--sha",
            &sha,
        ])
    }

    pub fn status(&self, train: &str) -> Value {
        serde_json::from_str(&self.k(&["status", "--train", train, "--json"]).ok())
            .expect("status json")
    }

    pub fn step_state(&self, train: &str, step: &str) -> String {
        step_of(&self.status(train), step)["state"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The server's `release=` tags of one train.
    pub fn tags(&self, train: &str) -> Vec<String> {
        let prefix = format!("release={train}");
        self.server
            .tags()
            .into_iter()
            .filter(|t| t == &prefix || t.starts_with(&format!("{prefix}=")))
            .collect()
    }
}

/// The kinds every train-loop scenario runs against.
pub const ALL_KINDS: [Kind; 4] = [Kind::Bare, Kind::Daemon, Kind::Http, Kind::Ssh];

/// One step of a `status --json` train.
pub fn step_of<'a>(status: &'a Value, step: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == step))
        .unwrap_or_else(|| panic!("no step {step} in {status}"))
}

/// The arguments of `locomotive publish-manifests`.
pub fn publish_args<'a>(dir: &'a std::path::Path, tag: &'a str, trigger: &'a str) -> [&'a str; 7] {
    [
        "publish-manifests",
        "--dir",
        dir.to_str().expect("a UTF-8 path"),
        "--tag",
        tag,
        "--triggering-tag",
        trigger,
    ]
}
