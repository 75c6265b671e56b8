//! Notifications (`tick --notify`) against real HTTP servers on loopback: a webhook
//! receiver that checks the HMAC, a Slack-shaped receiver, a fake of the GitHub REST
//! endpoints; exactly once under racing ticks, at least once when a target is down.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::harness::{Env, Out};
use crate::support::github_api::FakeGitHubRest;
use crate::support::receiver::{Receiver, Request};
use crate::support::servers::Kind;

/// `a`, then `b` (no retries) and a manual gate; the train fails when `b` fails.
const GATE_SDD: &str = "\
a: []
b: {needs: [a], retries: 0}
gate: {needs: [a], manual: true}
done: {needs: [b, gate], virtual: true}
";

pub(crate) const SECRET: &str = "hmac-key-s3cr3t-0451";

/// `konductor tick --train T` with these notify specs and the webhook secret.
pub(crate) fn tick_notify(env: &Env, train: &str, specs: &[&str], extra: &[(&str, &str)]) -> Out {
    let mut c = env.cmd("konductor");
    c.env("KONDUCTOR_NOTIFY_SECRET", SECRET)
        .args(["tick", "--train", train]);
    for s in specs {
        c.args(["--notify", s]);
    }
    for (k, v) in extra {
        c.env(k, v);
    }
    env.run_cmd(&mut c)
}

/// The hex HMAC-SHA256 of `body` with `key`, computed by `openssl`, not by Konductor.
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("body");
    std::fs::write(&f, body).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .arg(&f)
        .output()
        .expect("run openssl dgst");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Validate payloads against `integrations/schemas/notification.schema.json` with
/// Python's `jsonschema` (the test virtualenv's, else the system's).
pub(crate) fn validate_against_schema(payloads: &[serde_json::Value]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema = root.join("integrations/schemas/notification.schema.json");
    let venv = root.join("target/test-venv/bin/python");
    let python = if venv.exists() {
        venv.to_string_lossy().into_owned()
    } else {
        "python3".to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("payloads.json");
    std::fs::write(&data, serde_json::to_vec(payloads).unwrap()).unwrap();
    let out = Command::new(python)
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             s=json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(s)\n\
             v=jsonschema.Draft202012Validator(s)\n\
             for p in json.load(open(sys.argv[2])):\n    v.validate(p)\n\
             print('ok')",
        ])
        .arg(&schema)
        .arg(&data)
        .output()
        .expect("run python3 jsonschema");
    assert!(
        out.status.success(),
        "payload does not match the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn ids(reqs: &[Request]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in reqs {
        *m.entry(r.json()["id"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    m
}

fn assert_no_secret(out: &Out, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "`{s}` shown:\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
    }
}

/// Train 1.0 of GATE_SDD with `a` done and `b` triggered (nothing notified yet).
fn gate_train(env: &Env) -> String {
    let t = env.start();
    env.tick(&t);
    env.report(&format!("release={t}=a.1"), "success").ok();
    env.tick(&t);
    t
}

#[test]
fn webhook_gets_each_event_once_signed_with_hmac() {
    let env = Env::new(Kind::Http, GATE_SDD);
    let rx = Receiver::start();
    let spec = format!("webhook+{}", rx.url("/hooks/konductor"));
    let t = env.start();
    tick_notify(&env, &t, &[&spec], &[]).ok();
    env.report(&format!("release={t}=a.1"), "success").ok();
    // This tick triggers `b`, and the gate starts waiting.
    let out = tick_notify(&env, &t, &[&spec], &[]);
    assert_no_secret(&out, &[SECRET]);
    let stdout = out.ok();
    assert!(
        stdout.contains(&format!("trigger release={t}=b.1")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("notify: {t}=gate.waiting=gate → webhook-")),
        "{stdout}"
    );
    env.report(&format!("release={t}=b.1"), "failure").ok();
    tick_notify(&env, &t, &[&spec], &[]).ok();
    // Nothing new: nothing is sent again, even with no backoff at all.
    let again = tick_notify(&env, &t, &[&spec], &[("KONDUCTOR_NOTIFY_BACKOFF", "0")]).ok();
    assert!(!again.contains("notify:"), "{again}");

    let reqs = rx.taken();
    let want: BTreeMap<String, usize> = [
        format!("{t}=gate.waiting=gate"),
        format!("{t}=step.failed=b.1"),
        format!("{t}=train.failed"),
    ]
    .into_iter()
    .map(|i| (i, 1))
    .collect();
    assert_eq!(ids(&reqs), want);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/konductor");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let sig = r.header("x-konductor-signature-256").expect("signed");
        assert_eq!(sig, format!("sha256={}", openssl_hmac(SECRET, &r.body)));
        assert_eq!(r.header("x-konductor-delivery"), r.json()["id"].as_str());
        assert_eq!(r.header("x-konductor-event"), r.json()["event"].as_str());
    }
    let by_event = |e: &str| {
        reqs.iter()
            .map(Request::json)
            .find(|j| j["event"] == e)
            .unwrap_or_else(|| panic!("no {e}"))
    };
    let gate = by_event("gate.waiting");
    assert_eq!(gate["step"], "gate");
    assert_eq!(
        gate["command"],
        format!("konductor unblock --train {t} --step gate --reason \"…\"")
    );
    assert!(gate["message"]
        .as_str()
        .unwrap()
        .contains("konductor unblock"));
    let failed = by_event("step.failed");
    assert_eq!(failed["step"], "b");
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["commit"], env.sha.as_str());
    assert_eq!(
        failed["url"],
        format!("https://ci.example.com/release/{t}/b.1")
    );
    assert_eq!(by_event("train.failed")["train"], t.as_str());
    validate_against_schema(&reqs.iter().map(Request::json).collect::<Vec<_>>());

    // The markers: a claim and its result per delivery, outside `release=`.
    let tags = env.server.tags();
    let markers: Vec<&String> = tags.iter().filter(|x| x.starts_with("notify=")).collect();
    assert_eq!(markers.len(), 6, "{markers:?}");
    assert!(markers.iter().any(
        |m| m.starts_with(&format!("notify={t}=step.failed=b.1=webhook-"))
            && m.ends_with(".1=sent")
    ));
}

#[test]
fn a_tampered_body_does_not_match_the_signature() {
    // The control of the HMAC check above: the receiver's check can fail.
    let body = br#"{"event":"train.failed"}"#;
    let good = openssl_hmac(SECRET, body);
    assert_ne!(
        good,
        openssl_hmac(SECRET, br#"{"event":"train.succeeded"}"#)
    );
    assert_ne!(good, openssl_hmac("another-key", body));
}

#[test]
fn four_racing_ticks_deliver_every_event_exactly_once() {
    let env = Env::new(Kind::Daemon, GATE_SDD);
    let rx = Receiver::start();
    let specs = [
        format!("webhook+{}", rx.url("/one")),
        format!("webhook+{}", rx.url("/two")),
    ];
    let t = gate_train(&env);
    env.report(&format!("release={t}=b.1"), "failure").ok();
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (env, t, specs, barrier) = (&env, &t, &specs, &barrier);
            s.spawn(move || {
                // Its own cache, as on four machines.
                let cache = env.root.path().join(format!("cache-{i}"));
                for _ in 0..3 {
                    barrier.wait();
                    let mut c = env.cmd("konductor");
                    c.env("KONDUCTOR_CACHE_DIR", &cache)
                        .env("KONDUCTOR_NOTIFY_SECRET", SECRET)
                        .args([
                            "tick", "--train", t, "--notify", &specs[0], "--notify", &specs[1],
                        ]);
                    let out = env.run_cmd(&mut c);
                    assert_eq!(out.code, 0, "{out:?}");
                }
            });
        }
    });
    let reqs = rx.taken();
    for path in ["/one", "/two"] {
        let got: Vec<Request> = reqs.iter().filter(|r| r.path == path).cloned().collect();
        let want: BTreeMap<String, usize> = [
            format!("{t}=gate.waiting=gate"),
            format!("{t}=step.failed=b.1"),
            format!("{t}=train.failed"),
        ]
        .into_iter()
        .map(|i| (i, 1))
        .collect();
        assert_eq!(ids(&got), want, "deliveries to {path}");
    }
}

#[test]
fn a_receiver_that_is_down_gets_the_event_when_it_comes_back() {
    let env = Env::new(Kind::Http, GATE_SDD);
    let mut rx = Receiver::start();
    rx.stop();
    let spec = format!("webhook+{}", rx.url("/hook"));
    let t = env.start();
    env.tick(&t);
    env.report(&format!("release={t}=a.1"), "success").ok();
    let fast = [("KONDUCTOR_NOTIFY_BACKOFF", "0")];
    // Down: the tick still pushes its trigger, exits 0 and warns.
    let out = tick_notify(&env, &t, &[&spec], &fast);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("trigger release={t}=b.1")),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "konductor: warning: notify: {t}=gate.waiting=gate → webhook-"
        )) && out.stderr.contains("attempt 1 failed, tried again later"),
        "{out:?}"
    );
    assert!(rx.taken().is_empty());
    // Back: the next tick delivers it, as attempt 2, once.
    rx.start_again();
    let out = tick_notify(&env, &t, &[&spec], &fast).ok();
    assert!(
        out.contains(&format!("notify: {t}=gate.waiting=gate → webhook-")),
        "{out}"
    );
    tick_notify(&env, &t, &[&spec], &fast).ok();
    let got = ids(&rx.taken());
    assert_eq!(
        got.get(&format!("{t}=gate.waiting=gate")),
        Some(&1),
        "{got:?}"
    );
    let tags = env.server.tags();
    assert!(
        tags.iter()
            .any(|x| x.starts_with("notify=") && x.ends_with(".1=failed")),
        "{tags:?}"
    );
    assert!(
        tags.iter()
            .any(|x| x.starts_with("notify=") && x.ends_with(".2=sent")),
        "{tags:?}"
    );
}

#[test]
fn a_target_down_for_every_attempt_is_given_up_with_a_warning() {
    let env = Env::new(Kind::Bare, GATE_SDD);
    let mut rx = Receiver::start();
    rx.stop();
    let spec = format!("webhook+{}", rx.url("/hook"));
    let t = gate_train(&env);
    let fast = [("KONDUCTOR_NOTIFY_BACKOFF", "0")];
    for k in 1..=5 {
        let out = tick_notify(&env, &t, &[&spec], &fast);
        assert_eq!(out.code, 0);
        assert!(
            out.stderr.contains(&format!("attempt {k} failed")),
            "{k}: {out:?}"
        );
    }
    let out = tick_notify(&env, &t, &[&spec], &fast);
    assert!(out.stderr.contains("gave up after attempt 6"), "{out:?}");
    rx.start_again();
    let out = tick_notify(&env, &t, &[&spec], &fast);
    assert!(
        !out.stdout.contains("notify:") && !out.stderr.contains("notify:"),
        "{out:?}"
    );
    assert!(rx.taken().is_empty(), "a given-up event was sent");
}

#[test]
fn a_lost_claimant_is_replaced_and_a_live_one_is_left_alone() {
    let env = Env::new(Kind::Bare, GATE_SDD);
    let rx = Receiver::start();
    let url = rx.url("/hook");
    let spec = format!("webhook+{url}");
    let target = {
        let out = Command::new("sh")
            .args(["-c", "printf %s \"$1\" | sha256sum", "sh", &url])
            .output()
            .unwrap();
        format!("webhook-{}", &String::from_utf8(out.stdout).unwrap()[..8])
    };
    let t = gate_train(&env);
    env.report(&format!("release={t}=b.1"), "failure").ok();
    // A claim by a tick that died long ago (the fixture's clock is in the past), and one
    // made just now by a tick still at work.
    let lost = format!("notify={t}=gate.waiting=gate={target}.1");
    env.server
        .git(&["tag", "-a", "-m", "claim", &lost, &env.sha]);
    let live = format!("notify={t}=step.failed=b.1={target}.1");
    let now = format!(
        "@{} +0000",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let ok = Command::new("git")
        .args([
            "-C",
            env.server.url.as_str(),
            "tag",
            "-a",
            "-m",
            "claim",
            &live,
            &env.sha,
        ])
        .env("GIT_COMMITTER_DATE", &now)
        .env("GIT_COMMITTER_NAME", "Other Tick")
        .env("GIT_COMMITTER_EMAIL", "tick@example.com")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    tick_notify(&env, &t, &[&spec], &[]).ok();
    tick_notify(&env, &t, &[&spec], &[]).ok();
    let got = ids(&rx.taken());
    assert_eq!(
        got.get(&format!("{t}=gate.waiting=gate")),
        Some(&1),
        "{got:?}"
    );
    assert_eq!(
        got.get(&format!("{t}=step.failed=b.1")),
        None,
        "a live claim was taken over: {got:?}"
    );
    assert_eq!(got.get(&format!("{t}=train.failed")), Some(&1), "{got:?}");
    let tags = env.server.tags();
    assert!(
        tags.contains(&format!("notify={t}=gate.waiting=gate={target}.2=sent")),
        "{tags:?}"
    );
    assert!(
        !tags.iter().any(|x| x.starts_with(&format!("{live}="))),
        "{tags:?}"
    );
}

#[test]
fn oversized_messages_are_cut_for_slack_and_webhooks() {
    let env = Env::new(Kind::Bare, GATE_SDD);
    let rx = Receiver::start();
    let hook_secret_path = "/services/T0000/B0000/XXXXslackSECRETxxxx";
    let slack = format!("slack+{}", rx.url(hook_secret_path));
    let webhook = format!("webhook+{}", rx.url("/hook"));
    let t = gate_train(&env);
    let long = "why ".repeat(2500);
    let sha = env.sha.clone();
    env.l(&[
        "set-step-state",
        "--state-name",
        "failure",
        "--triggering-tag",
        &format!("release={t}=b.1"),
        "--info-string",
        &format!("log:{long}"),
        "--info-string",
        "job_url:https://ci.example.com/jobs/77",
        "--sha",
        &sha,
    ])
    .ok();
    let out = tick_notify(&env, &t, &[&slack, &webhook], &[]);
    assert_no_secret(&out, &["XXXXslackSECRETxxxx", SECRET]);
    out.ok();
    let reqs = rx.taken();
    let slack_msgs: Vec<serde_json::Value> = reqs
        .iter()
        .filter(|r| r.path == hook_secret_path)
        .map(Request::json)
        .collect();
    assert_eq!(slack_msgs.len(), 3, "{slack_msgs:?}");
    let mut cut_seen = false;
    for m in &slack_msgs {
        assert!(m["text"].as_str().unwrap().chars().count() <= 3000);
        for b in m["blocks"].as_array().unwrap() {
            if let Some(text) = b["text"]["text"].as_str() {
                assert!(text.chars().count() <= 3000, "{}", text.len());
                cut_seen |= text.contains("(cut: ");
            }
        }
    }
    assert!(cut_seen, "the long failure was not cut: {slack_msgs:?}");
    let gate = slack_msgs
        .iter()
        .find(|m| m.to_string().contains("gate `gate`"))
        .expect("gate message");
    assert!(gate
        .to_string()
        .contains(&format!("konductor unblock --train {t} --step gate")));
    let failed = slack_msgs
        .iter()
        .find(|m| m.to_string().contains("step `b` failed"))
        .expect("failure message");
    // A failure carries the job's link.
    assert!(
        failed
            .to_string()
            .contains("<https://ci.example.com/jobs/77|Open the job>"),
        "{failed}"
    );
    let hook: Vec<serde_json::Value> = reqs
        .iter()
        .filter(|r| r.path == "/hook")
        .map(Request::json)
        .collect();
    let f = hook.iter().find(|j| j["event"] == "step.failed").unwrap();
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.chars().count() <= 2000 && msg.contains("(cut: "),
        "{}",
        msg.len()
    );
    // The hook's secret path is in no marker either: markers name a digest.
    for tag in env.server.tags() {
        assert!(!tag.contains("XXXXslack"), "{tag}");
    }
}

#[test]
fn github_gets_commit_statuses_and_a_deployment_per_environment_deploy() {
    const ENV_SDD: &str = "\
build: []
deploy: {needs: [build], environment: staging, deploy_tag: staging-k8s}
done: {needs: [deploy], virtual: true}
";
    let env = Env::new(Kind::Bare, ENV_SDD);
    let token = "ghs_notifyTOKEN0123456789";
    let api = FakeGitHubRest::start("acme/app", token);
    let gh = |tok: &str| {
        vec![
            ("KONDUCTOR_GITHUB_API", api.base.clone()),
            ("KONDUCTOR_GITHUB_REPO", "acme/app".to_string()),
            ("KONDUCTOR_GITHUB_TOKEN", tok.to_string()),
            ("KONDUCTOR_NOTIFY_BACKOFF", "0".to_string()),
        ]
    };
    let run = |tok: &str, t: &str| {
        let vars = gh(tok);
        let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        tick_notify(&env, t, &["github"], &extra)
    };
    let t = env.start();
    // A token the API refuses: a warning, the token never shown, retried later.
    let wrong = "ghs_wrongTOKEN9876543210";
    let out = run(wrong, &t);
    assert_no_secret(&out, &[wrong, token]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("HTTP 401: Bad credentials"), "{out:?}");
    let out = run(token, &t);
    assert_no_secret(&out, &[token]);
    out.ok();
    env.report(&format!("release={t}=build.1"), "success").ok();
    run(token, &t).ok();
    env.report(&format!("release={t}=deploy.1"), "started").ok();
    env.report(&format!("release={t}=deploy.1"), "success").ok();
    run(token, &t).ok();
    run(token, &t).ok();
    let calls = api.calls();
    let ok: Vec<&(String, serde_json::Value, String)> =
        calls.iter().filter(|c| c.2 == "ok").collect();
    let refused: Vec<&(String, serde_json::Value, String)> =
        calls.iter().filter(|c| c.2 != "ok").collect();
    assert!(
        refused.iter().all(|c| c.2 == "Bad credentials"),
        "{refused:?}"
    );
    let statuses: Vec<(String, String)> = ok
        .iter()
        .filter(|c| c.0 == format!("POST /repos/acme/app/statuses/{}", env.sha))
        .map(|c| {
            (
                c.1["context"].as_str().unwrap().to_string(),
                c.1["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("konductor/build", "pending"),
        ("konductor/build", "success"),
        ("konductor/deploy", "pending"),
        ("konductor/deploy", "success"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, want, "{calls:?}");
    let deployments: Vec<_> = ok
        .iter()
        .filter(|c| c.0 == "POST /repos/acme/app/deployments")
        .collect();
    assert_eq!(deployments.len(), 1, "{calls:?}");
    assert_eq!(deployments[0].1["environment"], "staging");
    assert_eq!(deployments[0].1["ref"], env.sha.as_str());
    let dstates: Vec<&str> = ok
        .iter()
        .filter(|c| c.0 == "POST /repos/acme/app/deployments/1000/statuses")
        .map(|c| c.1["state"].as_str().unwrap())
        .collect();
    assert_eq!(dstates, ["in_progress", "success"], "{calls:?}");
}

#[test]
fn a_hanging_receiver_holds_the_tick_no_longer_than_the_timeout() {
    let env = Env::new(Kind::Bare, GATE_SDD);
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let spec = format!("webhook+http://127.0.0.1:{port}/hook");
    let t = gate_train(&env);
    env.report(&format!("release={t}=b.1"), "failure").ok();
    let started = Instant::now();
    let out = tick_notify(&env, &t, &[&spec], &[("KONDUCTOR_NOTIFY_TIMEOUT", "2")]);
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("attempt 1 failed"), "{out:?}");
    // One timeout, not one per event: the target is skipped for the rest of the run.
    assert!(took < Duration::from_secs(2 + 8), "took {took:?}");
    assert!(out.stdout.contains("skipped"), "{out:?}");
}

#[test]
fn notify_specs_with_credentials_never_show_them() {
    let env = Env::new(Kind::Http, GATE_SDD);
    let t = env.start();
    for spec in [
        "webhook+https://robot:hunter2pass@hooks.example.com/x",
        "slack+https://robot:hunter2pass@hooks.slack.com/services/T/B/SECRETxyz",
        "https://hooks.slack.com/services/T/B/SECRETxyz",
        "slack+hooks.slack.com/services/T/B/SECRETxyz",
    ] {
        let out = tick_notify(&env, &t, &[spec], &[]);
        assert_eq!(out.code, 2, "{spec}: {out:?}");
        assert_no_secret(&out, &["hunter2pass", "SECRETxyz"]);
    }
    // Refused before anything was pushed.
    assert_eq!(env.tags(&t), vec![format!("release={t}")]);
}

#[test]
fn gc_collects_a_trains_markers_with_it() {
    const ONE: &str = "a: []\ndone: {needs: [a], virtual: true}\n";
    let env = Env::new(Kind::Bare, ONE);
    let rx = Receiver::start();
    let spec = format!("webhook+{}", rx.url("/hook"));
    for _ in 0..2 {
        let t = env.start();
        env.tick(&t);
        env.report(&format!("release={t}=a.1"), "success").ok();
        tick_notify(&env, &t, &[&spec], &[]).ok();
    }
    assert_eq!(ids(&rx.taken()).len(), 2, "{:?}", ids(&rx.taken()));
    let before: Vec<String> = env
        .server
        .tags()
        .into_iter()
        .filter(|x| x.starts_with("notify=1.0="))
        .collect();
    assert_eq!(before.len(), 2, "{before:?}");
    env.k(&["gc", "--keep", "1"]).ok();
    let tags = env.server.tags();
    assert!(
        !tags.iter().any(|x| x.starts_with("notify=1.0=")),
        "{tags:?}"
    );
    assert_eq!(
        tags.iter().filter(|x| x.starts_with("notify=2.0=")).count(),
        2,
        "{tags:?}"
    );
    let archived = env
        .server
        .git(&["show", "refs/konductor/archive:trains/1.0.json"]);
    for m in before {
        assert!(archived.contains(&m), "{m} not archived");
    }
}
