//! `konductor serve` as a real process against real git servers: webhooks (good, bad,
//! replayed, oversized, malformed, unknown, outside `release=`, unknown repository), the
//! API against `status --json`, `/metrics` through a Prometheus text parser, the event
//! stream, and the live board in headless Chromium.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::Env;
use crate::support::servers::Kind;

const SDD: &str = "a: []\nb: [a]\ndone: {needs: [b], virtual: true}\n";
/// The same graph, with `b` deploying to production (for the DORA figures of `/metrics`).
const SDD_ENV: &str =
    "a: []\nb: {needs: [a], environment: production}\ndone: {needs: [b], virtual: true}\n";
const SECRET: &str = "webhook-s3cret";

/// A running `konductor serve`, killed on drop.
pub struct Serve {
    child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Start `konductor serve` for `remotes` (`NAME=URL`), with a one-hour safety tick so
    /// that only webhooks tick, and wait until it is ready.
    pub fn start(env: &Env, remotes: &[String], extra: &[&str]) -> Serve {
        Serve::start_with(env, remotes, extra, &[])
    }

    /// [`Serve::start`] with these environment variables too.
    pub fn start_with(
        env: &Env,
        remotes: &[String],
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Serve {
        let mut cmd = env.cmd("konductor");
        cmd.env(
            "KONDUCTOR_CACHE_DIR",
            env.cache.with_file_name("serve-cache"),
        )
        .env("KONDUCTOR_WEBHOOK_SECRET", SECRET)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tick-every",
            "3600",
            "--max-body",
            "4096",
        ])
        .args(extra);
        for r in remotes {
            cmd.args(["--remote", r]);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run konductor serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                l2.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));
        let s = Serve {
            child,
            base: format!("http://{addr}"),
            log,
        };
        s.wait_until("ready", || s.get("/readyz").0 == 200);
        s
    }

    pub fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; server log:\n{}",
            self.log().join("\n")
        );
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log lines about webhooks.
    fn webhook_lines(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.contains(": webhook "))
            .collect()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut r = agent()
            .get(format!("{}{path}", self.base))
            .call()
            .expect("GET");
        let code = r.status().as_u16();
        (code, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// POST a webhook with `headers`.
    pub fn post(&self, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
        let mut req = agent().post(format!("{}/webhook", self.base));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let mut r = req.send(body).expect("POST");
        let code = r.status().as_u16();
        (code, r.body_mut().read_to_string().unwrap_or_default())
    }

    /// A GitHub webhook signed with `secret`.
    pub fn github(
        &self,
        event: &str,
        delivery: &str,
        body: &str,
        secret: Option<&str>,
    ) -> (u16, String) {
        let mut h = vec![
            ("X-GitHub-Event", event.to_string()),
            ("X-GitHub-Delivery", delivery.to_string()),
            ("Content-Type", "application/json".to_string()),
        ];
        if let Some(s) = secret {
            h.push((
                "X-Hub-Signature-256",
                format!("sha256={}", sign(s, body.as_bytes())),
            ));
        }
        self.post(&h, body.as_bytes())
    }

    /// The value of the sample `name{labels}` in `/metrics`, 0 when absent.
    pub fn metric(&self, name_and_labels: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name_and_labels)
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    base16ct::lower::encode_string(&m.finalize().into_bytes())
}

/// A GitHub `push` payload for a tag of `repo`.
pub fn push_body(tag: &str, repo: &str) -> String {
    serde_json::json!({
        "ref": format!("refs/tags/{tag}"), "before": "0000000000000000000000000000000000000000",
        "created": true, "deleted": false, "forced": false,
        "repository": { "full_name": repo, "clone_url": format!("https://example.invalid/{repo}.git") },
        "commits": [],
    })
    .to_string()
}

/// A train whose step `a` succeeded and whose `b` waits for a tick.
fn train_waiting_for_a_tick(env: &Env) -> String {
    let t = env.start();
    env.tick(&t);
    env.report(&format!("release={t}=a.1"), "success").ok();
    t
}

fn has_tag(env: &Env, tag: &str) -> bool {
    env.server.tags().iter().any(|t| t == tag)
}

#[test]
fn serve_webhook_ticks_the_train_at_once_and_bad_ones_change_nothing() {
    let env = Env::new(Kind::Daemon, SDD);
    let srv = Serve::start(&env, &[format!("app={}", env.server.url)], &[]);
    let t = train_waiting_for_a_tick(&env);
    let state = format!("release={t}=a.1=success");
    let b1 = format!("release={t}=b.1");
    let good = push_body(&state, "acme/app");
    let ticks = "konductor_ticks_total{repo=\"app\",cause=\"webhook\",outcome=\"ok\"}";

    // Refused or ignored, each with its status, one log line, no tick.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(8192));
    let cases: Vec<(&str, (u16, String), &str)> = vec![
        (
            "bad signature",
            srv.github("push", "d-bad", &good, Some("wrong-secret")),
            "unauthorized",
        ),
        (
            "no signature",
            srv.github("push", "d-none", &good, None),
            "unauthorized",
        ),
        (
            "oversized",
            srv.github("push", "d-big", &big, Some(SECRET)),
            "too-large",
        ),
        (
            "malformed",
            srv.github("push", "d-json", "{\"ref\": ", Some(SECRET)),
            "malformed",
        ),
        (
            "unknown event",
            srv.github("issues", "d-issue", "{}", Some(SECRET)),
            "ignored",
        ),
        (
            "outside release=",
            srv.github(
                "push",
                "d-other",
                &push_body("v1.2.3", "acme/app"),
                Some(SECRET),
            ),
            "ignored",
        ),
        (
            "a branch",
            srv.github(
                "push",
                "d-branch",
                &good.replace("refs/tags/", "refs/heads/"),
                Some(SECRET),
            ),
            "ignored",
        ),
        (
            "a line break in the tag name",
            srv.github(
                "push",
                "d-forge",
                &push_body(
                    "v1\nkonductor serve: webhook github delivery `x`: queued: forged",
                    "acme/app",
                ),
                Some(SECRET),
            ),
            "ignored",
        ),
    ];
    let want = [401, 401, 413, 400, 202, 202, 202, 202];
    for ((what, (code, body), outcome), want) in cases.iter().zip(want) {
        assert_eq!(*code, want, "{what}: {body}");
        assert!(
            body.contains(&format!("\"outcome\": \"{outcome}\"")),
            "{what}: {body}"
        );
    }
    let lines = srv.webhook_lines();
    assert_eq!(
        lines.len(),
        cases.len(),
        "one log line per webhook: {lines:#?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains(SECRET)),
        "the secret is never logged"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!has_tag(&env, &b1), "no tick after refused webhooks");
    assert_eq!(srv.metric(ticks), 0.0);
    assert_eq!(
        srv.metric("konductor_webhooks_total{source=\"github\",outcome=\"unauthorized\"}"),
        2.0
    );

    // The good one: `b` is triggered at once, long before the hourly tick.
    let (code, body) = srv.github("push", "d-good", &good, Some(SECRET));
    assert_eq!(code, 202, "{body}");
    srv.wait_until("b.1 triggered by the webhook", || has_tag(&env, &b1));
    srv.wait_until("the webhook tick counted", || srv.metric(ticks) == 1.0);

    // Replayed: no change, no tick.
    let (code, body) = srv.github("push", "d-good", &good, Some(SECRET));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("duplicate"), "{body}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(srv.metric(ticks), 1.0, "a replayed delivery ticks nothing");
}

#[test]
fn serve_a_burst_of_webhooks_for_one_train_coalesces_into_a_few_ticks() {
    let env = Env::new(Kind::Daemon, SDD);
    let srv = Serve::start(&env, &[format!("app={}", env.server.url)], &[]);
    let t = train_waiting_for_a_tick(&env);
    let body = push_body(&format!("release={t}=a.1=success"), "acme/app");
    for i in 0..100 {
        let (code, out) = srv.github("push", &format!("burst-{i}"), &body, Some(SECRET));
        assert_eq!(code, 202, "{out}");
    }
    srv.wait_until("b.1 triggered", || {
        has_tag(&env, &format!("release={t}=b.1"))
    });
    let ticks = "konductor_ticks_total{repo=\"app\",cause=\"webhook\",outcome=\"ok\"}";
    // The last event is always followed by a tick: wait until the worker is idle.
    let mut last = -1.0;
    srv.wait_until("the ticks to settle", || {
        let n = srv.metric(ticks);
        let settled = n == last;
        last = n;
        std::thread::sleep(Duration::from_millis(700));
        settled
    });
    assert!(
        (1.0..=10.0).contains(&last),
        "100 webhooks for one train cost {last} ticks"
    );
    assert_eq!(
        srv.metric("konductor_webhooks_total{source=\"github\",outcome=\"queued\"}"),
        100.0
    );
}

#[test]
fn serve_routes_webhooks_by_repository() {
    let one = Env::new(Kind::Daemon, SDD);
    let two = Env::new(Kind::Bare, SDD);
    let srv = Serve::start(
        &one,
        &[
            format!("one={}", one.server.url),
            format!("acme/two={}", two.server.url),
        ],
        &[],
    );
    let t = train_waiting_for_a_tick(&two);
    let state = format!("release={t}=a.1=success");
    // Unknown repository: 404, no tick.
    let (code, body) = srv.github("push", "r-1", &push_body(&state, "acme/nope"), Some(SECRET));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("unknown-repository"), "{body}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!has_tag(&two, &format!("release={t}=b.1")));
    // GitLab's tag push for `acme/two` ticks the second repository.
    let gl = serde_json::json!({
        "object_kind": "tag_push", "ref": format!("refs/tags/{state}"),
        "project": { "path_with_namespace": "Acme/Two" },
    })
    .to_string();
    let (code, body) = srv.post(
        &[
            ("X-Gitlab-Event", "Tag Push Hook".into()),
            ("X-Gitlab-Token", "nope".into()),
        ],
        gl.as_bytes(),
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = srv.post(
        &[
            ("X-Gitlab-Event", "Tag Push Hook".into()),
            ("X-Gitlab-Token", SECRET.into()),
            ("X-Gitlab-Event-UUID", "gl-1".into()),
        ],
        gl.as_bytes(),
    );
    assert_eq!(code, 202, "{body}");
    srv.wait_until("b.1 on the second repository", || {
        has_tag(&two, &format!("release={t}=b.1"))
    });
    // The API needs `?repo=` with two repositories.
    assert_eq!(srv.get("/api/trains").0, 400);
    assert_eq!(srv.get("/api/trains?repo=nope").0, 404);
    let (code, body) = srv.get("/api/trains?repo=acme/two");
    assert_eq!(code, 200, "{body}");
}

#[test]
fn serve_api_equals_status_json() {
    let env = Env::new(Kind::Http, SDD);
    let t = train_waiting_for_a_tick(&env);
    env.tick(&t);
    let srv = Serve::start(&env, &[format!("app={}", env.server.url)], &[]);
    let status: Value = serde_json::from_str(&env.k(&["status", "--json"]).ok()).unwrap();
    let (code, api) = srv.get("/api/trains");
    assert_eq!(code, 200, "{api}");
    assert_eq!(serde_json::from_str::<Value>(&api).unwrap(), status);
    assert_eq!(status["trains"][0]["train"], t.as_str());
    let one: Value =
        serde_json::from_str(&env.k(&["status", "--train", &t, "--json"]).ok()).unwrap();
    let (code, api) = srv.get(&format!("/api/trains/{t}"));
    assert_eq!(code, 200, "{api}");
    assert_eq!(serde_json::from_str::<Value>(&api).unwrap(), one);
    let (code, body) = srv.get("/api/trains/99.0");
    assert_eq!(code, 404, "{body}");
    let (code, body) = srv.get("/api/trains/nine");
    assert_eq!(code, 400, "{body}");
    let (code, body) = srv.get("/api/environments");
    assert_eq!(code, 200, "{body}");
    let cli: Value = serde_json::from_str(&env.k(&["env", "--json"]).ok()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["environments"],
        cli["environments"],
        "{body}"
    );
    assert_eq!(srv.get("/healthz"), (200, "ok\n".to_string()));
}

/// The test venv's Python (`make test-deps`), which has `prometheus_client`.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("KONDUCTOR_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv"));
    venv.join("bin/python")
}

#[test]
fn serve_metrics_parse_as_prometheus_text() {
    let env = Env::new(Kind::Bare, SDD_ENV);
    let srv = Serve::start(&env, &[format!("app={}", env.server.url)], &[]);
    let t = train_waiting_for_a_tick(&env);
    srv.github(
        "push",
        "m-1",
        &push_body(&format!("release={t}=a.1=success"), "acme/app"),
        Some(SECRET),
    );
    srv.github("push", "m-2", "{}", Some("bad"));
    srv.wait_until("the tick", || has_tag(&env, &format!("release={t}=b.1")));
    srv.wait_until("the tick counted", || {
        srv.metric("konductor_ticks_total{repo=\"app\",cause=\"webhook\",outcome=\"ok\"}") == 1.0
    });
    srv.wait_until("the board read after the tick", || {
        srv.metric("konductor_trains{repo=\"app\",state=\"running\"}") == 1.0
    });
    let (code, text) = srv.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        !srv.log().iter().any(|l| l.contains("cannot compute")),
        "{:#?}",
        srv.log()
    );
    let script = r##"
import sys, json
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as prom
text = sys.stdin.read()
out = {}
for fam in om(text):
    for s in fam.samples:
        out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
# The plain Prometheus text parser reads it too.
n = sum(len(f.samples) for f in prom(text.replace("# EOF\n", "")))
assert n == len(out), (n, len(out))
print(json.dumps(out))
"##;
    let py = venv_python();
    let mut child = Command::new(&py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} ({e}): run `make test-deps`", py.display()));
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the parser refused /metrics:\n{}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    let samples: serde_json::Map<String, Value> = serde_json::from_slice(&o.stdout).unwrap();
    let get = |k: &str| samples.get(k).and_then(Value::as_f64);
    assert_eq!(
        get(r#"konductor_webhooks_total{"outcome": "queued", "source": "github"}"#),
        Some(1.0),
        "{samples:#?}"
    );
    assert_eq!(
        get(r#"konductor_webhooks_total{"outcome": "unauthorized", "source": "github"}"#),
        Some(1.0)
    );
    assert_eq!(
        get(r#"konductor_ticks_total{"cause": "webhook", "outcome": "ok", "repo": "app"}"#),
        Some(1.0)
    );
    assert!(
        get(r#"konductor_git_read_seconds_count{"read": "board", "repo": "app"}"#).unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        get(r#"konductor_trains{"repo": "app", "state": "running"}"#),
        Some(1.0)
    );
    assert_eq!(get("konductor_sse_clients{}"), Some(0.0));
    // The figures of `konductor metrics`, computed from the tags on the scrape: `b`
    // deploys to production and has not finished, `a` ran once.
    assert_eq!(
        get(r#"konductor_dora_deploys{"environment": "production", "repo": "app"}"#),
        Some(0.0),
        "{samples:#?}"
    );
    assert_eq!(
        get(r#"konductor_dora_window_seconds{"environment": "production", "repo": "app"}"#),
        Some(30.0 * 86_400.0)
    );
    assert_eq!(
        get(r#"konductor_step_duration_seconds_count{"repo": "app", "step": "a"}"#),
        Some(1.0),
        "{samples:#?}"
    );
}

/// Read server-sent events from `/events` until `f` accepts one's data (or 60 s pass).
pub fn read_events(base: &str, mut f: impl FnMut(usize, &str) -> bool) {
    let mut r = agent()
        .get(format!("{base}/events"))
        .call()
        .expect("GET /events");
    assert_eq!(r.status().as_u16(), 200);
    let mut reader = BufReader::new(r.body_mut().as_reader());
    let t0 = Instant::now();
    let (mut data, mut n) = (String::new(), 0);
    let mut line = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(d) = l.strip_prefix("data: ") {
            data.push_str(d);
            data.push('\n');
        } else if l.is_empty() && !data.is_empty() {
            if f(n, &data) {
                return;
            }
            n += 1;
            data.clear();
        }
    }
    panic!("no matching event within 60 s");
}

#[test]
fn serve_events_deliver_a_changed_board() {
    let env = Env::new(Kind::Daemon, SDD);
    let srv = Serve::start(&env, &[format!("app={}", env.server.url)], &[]);
    let t = train_waiting_for_a_tick(&env);
    let b = format!("data-train=\"{t}\" data-step=\"b\"");
    let body = push_body(&format!("release={t}=a.1=success"), "acme/app");
    read_events(&srv.base, |n, data| {
        if n == 0 {
            // The current board first, read before the train opened. Then the webhook.
            assert!(data.contains("No trains yet."), "{data}");
            assert!(
                !data.contains(&format!("{b} data-state=\"triggered\"")),
                "{data}"
            );
            assert_eq!(srv.metric("konductor_sse_clients"), 1.0);
            srv.github("push", "e-1", &body, Some(SECRET));
            return false;
        }
        data.contains(&format!("{b} data-state=\"triggered\""))
    });
}

/// The page of `GET /` in a real browser: the server sends the changed board on
/// `/events`, the page swaps it in without a reload. Screenshots before and after are kept
/// in `target/serve-live-board-{before,after}.png`.
#[test]
fn serve_live_board_updates_in_chromium_without_a_reload() {
    let Some(chromium) = crate::browser::chromium() else {
        eprintln!("skipped: no chromium");
        return;
    };
    let env = Env::new(Kind::Daemon, SDD);
    let srv = Serve::start(&env, &[format!("app={}", env.server.url)], &[]);
    // A train whose `a` runs; the train tag's webhook puts it on the board.
    let t2 = env.start();
    env.tick(&t2);
    let (code, body) = srv.github(
        "create",
        "lb-1",
        &format!(
            r#"{{"ref":"release={t2}","ref_type":"tag","repository":{{"full_name":"acme/app"}}}}"#
        ),
        Some(SECRET),
    );
    assert_eq!(code, 202, "{body}");
    srv.wait_until("the train on the board", || {
        srv.get("/")
            .1
            .contains(&format!("data-train=\"{t2}\" data-step=\"b\""))
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let (before, after) = (
        out.join("serve-live-board-before.png"),
        out.join("serve-live-board-after.png"),
    );
    let selector = format!("g[data-train=\"{t2}\"][data-step=\"b\"]");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/support/live_board.py");
    let mut py = Command::new("python3")
        .arg(&script)
        .args([
            chromium.to_str().unwrap(),
            &format!("{}/", srv.base),
            before.to_str().unwrap(),
            after.to_str().unwrap(),
            &selector,
            "triggered",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().and_then(Result::ok).as_deref(),
        Some("READY"),
        "the page did not load"
    );
    env.report(&format!("release={t2}=a.1"), "success").ok();
    let (code, body) = srv.github(
        "push",
        "lb-2",
        &push_body(&format!("release={t2}=a.1=success"), "acme/app"),
        Some(SECRET),
    );
    assert_eq!(code, 202, "{body}");
    use std::io::Write as _;
    writeln!(py.stdin.as_mut().unwrap(), "GO").unwrap();
    let result: Value =
        serde_json::from_str(&lines.next().and_then(Result::ok).expect("a result")).unwrap();
    assert!(py.wait().unwrap().success());
    assert_eq!(result["state"], "triggered", "{result}");
    assert_eq!(result["reloaded"], false, "{result}");
    assert!(
        std::fs::metadata(&before).unwrap().len() > 0
            && std::fs::metadata(&after).unwrap().len() > 0
    );
}
