//! The board's tests: the page's safety (CSP, escaping, links), its content on realistic
//! trains planned from real tags, and the layout's geometry.

use std::collections::BTreeMap;

use konductor_core::ops::Planned;
use konductor_core::plan::{plan, PlanContext, StepKind, StepState, TrainState};
use konductor_core::report::{AttemptReport, Placement, StepReport, TrainReport};
use konductor_core::sdd::Sdd;
use konductor_core::tag::TrainId;
use konductor_core::time::rfc3339;
use konductor_core::train::{Observed, TagRecord};

use super::csp::{hash, SCRIPT, STYLE};
use super::layout::{isotonic_place, layout, wrap_name, GAP_X, GAP_Y};
use super::render_board;

/// The repository's `sdd.yaml`, short form.
const SDD: &str = "\
unit-tests: []
lint: []
build_serving_image: []
build_worker_image: []
deploy_serving_staging_k8s:
  needs: [unit-tests, lint, build_serving_image, build_worker_image]
  timeout: 30m
verify_serving_staging:
  needs: [deploy_serving_staging_k8s]
  retries: 1
  timeout: 30m
complete-verification:
  needs: [verify_serving_staging]
  virtual: true
require-manual-unblock-before-prod-deploy:
  needs: [complete-verification]
  manual: true
  if_changed: [flavors.yaml]
deploy_serving_prod_k8s:
  needs: [require-manual-unblock-before-prod-deploy]
  timeout: 30m
verify_serving_prod:
  needs: [deploy_serving_prod_k8s]
  retries: 1
  timeout: 30m
complete-deploy:
  needs: [verify_serving_prod]
  virtual: true
";

const NOW: i64 = 1_795_000_000;

/// Builds one train's tags the way konductor and the CI jobs write them.
struct Tags {
    t: TrainId,
    commit: String,
    recs: Vec<TagRecord>,
}

impl Tags {
    fn new(number: u32, patch: u32, at: i64) -> Tags {
        let commit = format!(
            "{:08x}{:032x}",
            number.wrapping_mul(0x9e37_79b9),
            (u128::from(number) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
        );
        let t = TrainId::new(number, patch);
        let mut me = Tags {
            t,
            commit,
            recs: Vec::new(),
        };
        me.push(
            &format!("release={t}"),
            at,
            "open train\n\nopened-by: Dana Release <dana@example.com>\n",
        );
        me
    }

    fn push(&mut self, name: &str, at: i64, message: &str) {
        self.recs.push(TagRecord {
            name: name.to_string(),
            commit: self.commit.clone(),
            tagger: Some("konductor-bot <ci@example.com>".into()),
            time: Some(at),
            message: message.to_string(),
            signer: None,
            signature_error: None,
        });
    }

    /// One attempt: triggered at `at`, started 15 s later, and (if `end` is given) the
    /// outcome `dur` seconds after that.
    fn job(&mut self, step: &str, job: u32, at: i64, end: Option<(&str, i64)>) -> &mut Self {
        let t = self.t;
        let trig = format!("release={t}={step}.{job}");
        self.push(
            &trig,
            at,
            &format!("trigger `{step}` attempt {job}\n\nreason: dependencies done\n"),
        );
        let url = format!("https://ci.example.com/pipelines/{}/{step}/{job}", t.number);
        self.push(
            &format!("{trig}=started"),
            at + 15,
            &format!("{trig} started\n\njob_url: {url}\nby: ci-runner-7\n"),
        );
        if let Some((state, dur)) = end {
            self.push(
                &format!("{trig}={state}"),
                at + 15 + dur,
                &format!(
                    "{trig} {state}\n\njob_url: {url}\nimage: registry.example.com/serving@sha256:4f2a9c\nby: ci-runner-7\n"
                ),
            );
        }
        self
    }

    /// The leaves (started 30 s after `base`, each taking `leaf(k)` seconds), then the
    /// staging deploy and its verification, at `(offset, duration)` from `base`.
    fn through_staging(
        &mut self,
        base: i64,
        leaf: impl Fn(usize) -> i64,
        deploy: (i64, i64),
        verify: (i64, &str, i64),
    ) {
        for (k, s) in LEAVES.iter().enumerate() {
            self.job(s, 1, base + 30, Some(("success", leaf(k))));
        }
        let (at, d) = deploy;
        self.job(
            "deploy_serving_staging_k8s",
            1,
            base + at,
            Some(("success", d)),
        );
        let (at, state, d) = verify;
        self.job("verify_serving_staging", 1, base + at, Some((state, d)));
    }

    fn report(&self, gate_changed: bool) -> TrainReport {
        let sdd = Sdd::parse("sdd.yaml", SDD).expect("valid sdd");
        let mut obs = Observed::from_records(self.t, &self.recs).expect("train tag");
        obs.retain_steps(|s| sdd.step(s).is_some());
        let target = sdd.default_target().expect("target").to_string();
        let mut conditions = BTreeMap::new();
        conditions.insert(
            "require-manual-unblock-before-prod-deploy".to_string(),
            if gate_changed {
                (true, "`flavors.yaml` changed since train 41.0".to_string())
            } else {
                (
                    false,
                    "skipped: nothing matching `flavors.yaml` changed".to_string(),
                )
            },
        );
        let ctx = PlanContext {
            now: NOW,
            conditions,
            environments: None,
        };
        let p = plan(&sdd, &target, &obs, &ctx);
        TrainReport::new(&Planned { obs, sdd, plan: p })
    }
}

const LEAVES: [&str; 4] = [
    "unit-tests",
    "lint",
    "build_serving_image",
    "build_worker_image",
];

/// Five trains on the real graph, newest first: running (a retry under way), blocked on
/// the manual gate, failed (with a spoofed tag), in production, cancelled.
fn realistic() -> Vec<TrainReport> {
    let h = 3600;
    let mut out = Vec::new();

    let mut t = Tags::new(45, 0, NOW - h);
    t.through_staging(
        NOW - h,
        |k| 120 + 40 * k as i64,
        (400, 260),
        (700, "failure", 300),
    );
    t.job("verify_serving_staging", 2, NOW - 900, None);
    out.push(t.report(true));

    let mut t = Tags::new(44, 0, NOW - 5 * h);
    t.through_staging(NOW - 5 * h, |_| 200, (300, 240), (600, "success", 500));
    out.push(t.report(true));

    let mut t = Tags::new(43, 0, NOW - 26 * h);
    t.through_staging(NOW - 26 * h, |_| 180, (300, 200), (600, "success", 400));
    t.push(
        "release=43.0=require-manual-unblock-before-prod-deploy=skipped",
        NOW - 26 * h + 1050,
        "skipped: nothing matching `flavors.yaml` changed since train 42.0\n",
    );
    t.job(
        "deploy_serving_prod_k8s",
        1,
        NOW - 26 * h + 1100,
        Some(("failure", 95)),
    );
    // A state tag on another commit: ignored, and reported as a warning.
    t.recs.push(TagRecord {
        name: "release=43.0=deploy_serving_prod_k8s.1=success".into(),
        commit: "badc0ffee0000000000000000000000000000000".into(),
        tagger: Some("mallory <m@example.com>".into()),
        time: Some(NOW - 20 * h),
        message: "spoofed success\n".into(),
        signer: None,
        signature_error: None,
    });
    out.push(t.report(false));

    let mut t = Tags::new(42, 0, NOW - 50 * h);
    t.through_staging(NOW - 50 * h, |_| 150, (300, 200), (600, "success", 400));
    t.push(
        "release=42.0=require-manual-unblock-before-prod-deploy=unblocked",
        NOW - 48 * h,
        "unblock `require-manual-unblock-before-prod-deploy`\n\nby: Alice Ops <alice@example.com>\nreason: flavors reviewed\n",
    );
    t.job(
        "deploy_serving_prod_k8s",
        1,
        NOW - 48 * h + 60,
        Some(("success", 210)),
    );
    t.job(
        "verify_serving_prod",
        1,
        NOW - 48 * h + 400,
        Some(("success", 380)),
    );
    out.push(t.report(true));

    let mut t = Tags::new(41, 1, NOW - 80 * h);
    t.job("lint", 1, NOW - 80 * h + 30, Some(("success", 50)));
    t.push(
        "release=41.1=cancelled",
        NOW - 79 * h,
        "cancel\n\nby: Bob <bob@example.com>\nreason: superseded by 42.0\n",
    );
    out.push(t.report(true));
    out
}

fn step(name: &str, kind: StepKind, state: StepState, needs: &[String]) -> StepReport {
    StepReport {
        name: name.to_string(),
        kind,
        state,
        attempt: 0,
        info: None,
        job_url: None,
        reason: None,
        needs: needs.to_vec(),
        triggered_at: None,
        started_at: None,
        finished_at: None,
        duration_secs: None,
        unblocked_by: None,
        unblocked_at: None,
        until: None,
        attempts: Vec::new(),
    }
}

fn train(id: &str, state: TrainState, steps: Vec<StepReport>) -> TrainReport {
    TrainReport {
        train: id.to_string(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        state,
        target: steps.last().map(|s| s.name.clone()).unwrap_or_default(),
        steps,
        opened_at: rfc3339(NOW - 7200),
        opened_by: "Dana <dana@example.com>".into(),
        placement: Placement::None,
        cancelled_by: None,
        cancel_reason: None,
        warnings: Vec::new(),
        archived: false,
    }
}

/// `ntrains` trains of `nsteps` steps each: a deterministic pseudo-random DAG.
fn synthetic(ntrains: usize, nsteps: usize) -> Vec<TrainReport> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |m: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % m as u64) as usize
    };
    let words = [
        "build",
        "test_integration_suite",
        "deploy",
        "verify_canary_rollout_in_region",
        "lint",
        "publish-helm-chart",
    ];
    (0..ntrains)
        .map(|t| {
            let number = 1000 - t;
            let mut names: Vec<String> = Vec::new();
            let front = if t == 0 { nsteps / 2 } else { (t * 37 + 11) % (nsteps + 8) };
            let steps: Vec<StepReport> = (0..nsteps)
                .map(|i| {
                    let name = format!("s{i:02}-{}", words[rnd(words.len())]);
                    let mut needs: Vec<String> = Vec::new();
                    if i > 0 && (i >= 4 || rnd(3) == 0) {
                        for _ in 0..1 + rnd(3) {
                            let back = 1 + rnd(i.min(9));
                            let n = names[i - back].clone();
                            if !needs.contains(&n) {
                                needs.push(n);
                            }
                        }
                    }
                    let kind = if i + 1 == nsteps {
                        StepKind::Target
                    } else if i % 11 == 10 {
                        StepKind::Manual
                    } else if i % 13 == 12 {
                        StepKind::Virtual
                    } else {
                        StepKind::Job
                    };
                    let state = if i < front {
                        if i % 17 == 5 {
                            StepState::Skipped
                        } else {
                            StepState::Success
                        }
                    } else if i == front {
                        [StepState::Started, StepState::Failure, StepState::Triggered][t % 3]
                    } else if i < front + 3 && t % 3 == 1 {
                        StepState::Blocked
                    } else {
                        StepState::Pending
                    };
                    let mut s = step(&name, kind, state, &needs);
                    if kind == StepKind::Job && state != StepState::Pending {
                        s.attempt = 1 + (i % 5 == 0) as u32;
                        let url = format!("https://ci.example.com/job/{number}/{i}");
                        s.job_url = Some(url.clone());
                        s.info = Some(format!("job_url: {url} runner: pool-{}", i % 4));
                        s.started_at = Some(rfc3339(NOW - 3600 + i as i64 * 60));
                        s.triggered_at = Some(rfc3339(NOW - 3610 + i as i64 * 60));
                        if matches!(state, StepState::Success | StepState::Failure) {
                            s.finished_at = Some(rfc3339(NOW - 3500 + i as i64 * 60));
                            s.duration_secs = Some(100);
                        }
                        s.attempts = (1..=s.attempt)
                            .map(|a| AttemptReport {
                                attempt: a,
                                tag: format!("release={number}.0={name}.{a}"),
                                state: state.as_str().to_string(),
                                rerun: None,
                                triggered_at: s.triggered_at.clone(),
                                started_at: s.started_at.clone(),
                                finished_at: s.finished_at.clone(),
                                duration_secs: s.duration_secs,
                                info: s.info.clone(),
                                job_url: s.job_url.clone(),
                                reason: Some("dependencies done".into()),
                            })
                            .collect();
                    }
                    names.push(name);
                    s
                })
                .collect();
            let st = if front >= nsteps {
                TrainState::Succeeded
            } else {
                [TrainState::Running, TrainState::Blocked, TrainState::Failed][t % 3]
            };
            let mut tr = train(&format!("{number}.0"), st, steps);
            tr.placement = if front >= nsteps {
                Placement::Production
            } else if front > nsteps / 2 {
                Placement::Staging
            } else {
                Placement::None
            };
            if t % 10 == 4 {
                tr.warnings.push(format!(
                    "ignored `release={number}.0=s03-build.1=success`: it points to commit badc0ffee0 but train {number}.0 is on 0123456789"
                ));
            }
            tr
        })
        .collect()
}

/// The opening tags of every `<g class="n …">` node.
fn node_tags(html: &str) -> Vec<&str> {
    html.match_indices("<g class=\"n ")
        .map(|(i, _)| {
            let end = html[i..].find('>').expect("tag end");
            &html[i..i + end + 1]
        })
        .collect()
}

#[test]
fn csp_hashes_match_known_vectors() {
    // SHA-256 then base64, as a CSP hash source wants them (FIPS 180-4 test vectors).
    for (text, want) in [
        ("", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ("abc", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "JI1qYdIGOLjlwCaTDD5gOaM85Flk/yFn9uzt1BnbBsE=",
        ),
        (
            &"a".repeat(1000),
            "Qe3s5C1j6Nm/UVqbppMuHCDLyfWl0TRkWttdsblzfqM=",
        ),
    ] {
        assert_eq!(hash(text), want, "{text:?}");
    }
}

#[test]
fn page_is_self_contained_and_locked_down_by_csp() {
    let html = render_board(&realistic(), NOW, "https://git.example.com/acme/app.git");
    assert!(html.starts_with("<!DOCTYPE html>"));
    let csp = format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}';",
        hash(STYLE),
        hash(SCRIPT)
    );
    assert!(html.contains(&csp), "CSP meta missing or wrong");
    assert!(
        html.find(&csp) < html.find("<style>"),
        "CSP must precede the style"
    );
    // The only style and script are ours, verbatim (the hashes cover them).
    assert_eq!(html.matches("<style").count(), 1);
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(&format!("<style>{STYLE}</style>")));
    assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
    // Nothing that loads anything, and no inline style or handlers the CSP would block.
    for bad in [
        " src=",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "url(",
        "@import",
        " style=",
        " onclick=",
        " onload=",
        "javascript:",
    ] {
        assert!(!html.contains(bad), "page contains {bad:?}");
    }
    assert!(!STYLE.contains("</style") && !SCRIPT.contains("</script"));
}

#[test]
fn untrusted_strings_are_escaped() {
    let mut s = step("deploy", StepKind::Job, StepState::Failure, &[]);
    s.attempt = 1;
    s.info = Some("<script>alert('info')</script> \"quoted\" & more".into());
    s.reason = Some("<script>alert(\"reason\")</script>".into());
    s.job_url = Some("https://ci.example.com/x?a=1&b=\"><script>alert(1)</script>".into());
    let mut gate = step(
        "gate<img src=x onerror=alert(1)>",
        StepKind::Manual,
        StepState::Success,
        &["deploy".into()],
    );
    gate.unblocked_by = Some("<b>mallory</b>".into());
    let mut t = train("7.0", TrainState::Failed, vec![s, gate]);
    t.warnings
        .push("ignored `release=7.0=x.1=success`: <script>alert('w')</script>".into());
    t.opened_by = "<i>eve</i>".into();
    t.cancel_reason = Some("<script>c</script>".into());
    let html = render_board(&[t], NOW, "https://git.example.com/<script>r</script>");
    assert_eq!(html.matches("<script").count(), 1, "only our own script");
    for raw in [
        "<img",
        "<b>mallory",
        "<i>eve",
        "onerror=alert(1)>",
        "\"quoted\"",
    ] {
        assert!(!html.contains(raw), "unescaped {raw:?}");
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;info&#39;)&lt;/script&gt;"));
    assert!(html.contains("&lt;script&gt;alert(&quot;reason&quot;)&lt;/script&gt;"));
    assert!(html.contains("&lt;script&gt;alert(&#39;w&#39;)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;mallory&lt;/b&gt;"));
    assert!(html.contains("git.example.com/&lt;script&gt;r&lt;/script&gt;"));
    assert!(html.contains("data-step=\"gate&lt;img src=x onerror=alert(1)&gt;\""));
    // The URL stays inside its attribute.
    assert!(html.contains(
        "href=\"https://ci.example.com/x?a=1&amp;b=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""
    ));
}

#[test]
fn only_http_job_urls_become_links() {
    let urls = [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(2)",
        "data:text/html,<script>alert(3)</script>",
        "ftp://ci.example.com/4",
        "//evil.example.com/5",
        "https://",
        "https://ci.example.com/6 onmouseover=alert(6)",
        "https://ci.example.com/ok/7",
        "HTTP://ci.example.com/ok/8",
    ];
    let steps = urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut s = step(&format!("s{i}"), StepKind::Job, StepState::Success, &[]);
            s.attempt = 1;
            s.job_url = Some(u.to_string());
            s
        })
        .collect();
    let html = render_board(&[train("8.0", TrainState::Running, steps)], NOW, "r");
    let hrefs: Vec<&str> = html
        .match_indices("href=\"")
        .map(|(i, _)| {
            let rest = &html[i + 6..];
            &rest[..rest.find('"').unwrap()]
        })
        .filter(|h| !h.starts_with('#'))
        .collect();
    assert!(!hrefs.is_empty());
    for h in &hrefs {
        assert!(
            *h == "https://ci.example.com/ok/7" || *h == "HTTP://ci.example.com/ok/8",
            "unexpected link {h:?}"
        );
    }
    // Two links per good URL: the node and the table.
    assert_eq!(hrefs.len(), 4);
    for (i, _) in html.match_indices("<a href=\"http") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains("rel=\"noopener noreferrer\""), "{tag}");
    }
    assert!(!html.to_ascii_lowercase().contains("href=\"javascript"));
    // Bad URLs are still shown, as text.
    assert!(html.contains("ftp://ci.example.com/4"));
}

#[test]
fn every_step_node_carries_its_train_step_and_state() {
    let trains = realistic();
    let html = render_board(&trains, NOW, "origin");
    let nodes = node_tags(&html);
    assert_eq!(
        nodes.len(),
        trains.iter().map(|t| t.steps.len()).sum::<usize>()
    );
    for t in &trains {
        let section = format!(
            "<section class=\"train\" id=\"train-{0}\" data-train=\"{0}\" data-state=\"{1}\">",
            t.train,
            t.state.as_str()
        );
        assert_eq!(html.matches(&section).count(), 1, "{section}");
        for s in &t.steps {
            let want = format!(
                "data-train=\"{}\" data-step=\"{}\" data-state=\"{}\"",
                t.train,
                s.name,
                s.state.as_str()
            );
            assert_eq!(
                nodes.iter().filter(|n| n.contains(&want)).count(),
                1,
                "{want}"
            );
        }
    }
    // The planner's states made it through.
    let t45 = &trains[0];
    assert_eq!(t45.state, TrainState::Running);
    assert!(html.contains(
        "data-train=\"45.0\" data-step=\"verify_serving_staging\" data-state=\"started\""
    ));
    assert!(html.contains("data-train=\"44.0\" data-step=\"require-manual-unblock-before-prod-deploy\" data-state=\"blocked\""));
    assert!(html.contains(
        "data-train=\"43.0\" data-step=\"deploy_serving_prod_k8s\" data-state=\"failure\""
    ));
    assert!(html.contains("data-train=\"43.0\" data-step=\"require-manual-unblock-before-prod-deploy\" data-state=\"skipped\""));
}

#[test]
fn realistic_board_shows_environments_gates_list_and_warnings() {
    let trains = realistic();
    let states: Vec<&str> = trains.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(
        states,
        ["running", "blocked", "failed", "succeeded", "cancelled"]
    );
    let html = render_board(&trains, NOW, "https://git.example.com/acme/app.git");
    let card = |id: &str| {
        let i = html.find(&format!("id=\"env-{id}\"")).unwrap();
        &html[i..i + html[i..].find("</article>").unwrap()]
    };
    // 42.0 reached production; 44.0 (waiting at the gate) is the newest in staging.
    assert!(card("prod").contains("href=\"#train-42.0\""));
    assert!(card("staging").contains("href=\"#train-44.0\""));
    // The one gate waiting, with the command that unblocks it.
    let i = html.find("id=\"waiting\"").unwrap();
    let waiting = &html[i..i + html[i..].find("</section>").unwrap()];
    assert!(waiting.contains("<span class=\"count\">1</span>"));
    assert!(waiting.contains(
        "konductor unblock --train 44.0 --step require-manual-unblock-before-prod-deploy --reason"
    ));
    assert!(!waiting.contains("45.0"));
    // The train list has every train, in the given order.
    let pos: Vec<usize> = trains
        .iter()
        .map(|t| {
            html.find(&format!(
                "<td class=\"tn\"><a href=\"#train-{0}\">{0}</a>",
                t.train
            ))
            .expect("row")
        })
        .collect();
    assert!(pos.windows(2).all(|p| p[0] < p[1]));
    assert!(html.contains("<span>8/11</span>"), "44.0 progress");
    // 43.0's spoofed tag shows as a warning box.
    assert!(html.contains("<div class=\"warn\" role=\"note\">"));
    assert!(html.contains("ignored `release=43.0=deploy_serving_prod_k8s.1=success`"));
    // Open: the first three and running trains; 42.0 and 41.1 closed.
    for (id, open) in [
        ("45.0", true),
        ("44.0", true),
        ("43.0", true),
        ("42.0", false),
        ("41.1", false),
    ] {
        let i = html.find(&format!("id=\"train-{id}\"")).unwrap();
        let tail = &html[i..];
        assert_eq!(
            tail[..tail.find('\n').unwrap() + 20].contains("<details open>"),
            open,
            "{id}"
        );
    }
    assert!(html.contains("Cancelled by Bob &lt;bob@example.com&gt;: superseded by 42.0."));
    assert!(html.contains("unblocked by Alice Ops &lt;alice@example.com&gt;"));
    // Job links from the `job_url:` info, and the rest of the info shown.
    assert!(html.contains("href=\"https://ci.example.com/pipelines/45/verify_serving_staging/2\""));
    assert!(html.contains("image: registry.example.com/serving@sha256:4f2a9c"));
    // The graph is layered by longest path: 8 layers, the target last.
    assert!(html.contains("data-layers=\"8\""));
}

#[test]
fn layout_is_layered_and_nodes_do_not_overlap() {
    for t in realistic().iter().chain(synthetic(12, 40).iter()) {
        let lay = layout(&t.steps);
        let idx: BTreeMap<&str, usize> = t
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        for (i, s) in t.steps.iter().enumerate() {
            let b = &lay.boxes[i];
            assert!(b.x >= 0.0 && b.y >= 0.0);
            assert!(b.x + b.w <= lay.width && b.y + b.h <= lay.height);
            let want = s.needs.iter().map(|n| lay.layer[idx[n.as_str()]] + 1).max();
            assert_eq!(lay.layer[i], want.unwrap_or(0), "{}", s.name);
            for n in &s.needs {
                let a = &lay.boxes[idx[n.as_str()]];
                assert!(a.x + a.w + GAP_X <= b.x + 0.01);
            }
            for (j, c) in lay.boxes.iter().enumerate() {
                if i != j && lay.layer[i] == lay.layer[j] {
                    assert!(
                        b.y + b.h + GAP_Y - 0.01 <= c.y || c.y + c.h + GAP_Y - 0.01 <= b.y,
                        "{} overlaps {}",
                        s.name,
                        t.steps[j].name
                    );
                }
            }
        }
        assert_eq!(
            lay.edges.len(),
            t.steps.iter().map(|s| s.needs.len()).sum::<usize>()
        );
    }
}

#[test]
fn fifty_trains_of_forty_steps_render_compactly() {
    let trains = synthetic(50, 40);
    let html = render_board(&trains, NOW, "https://git.example.com/big.git");
    assert!(html.len() < 5_000_000, "{} bytes", html.len());
    assert_eq!(node_tags(&html).len(), 2000);
    assert_eq!(html.matches("<section class=\"train\"").count(), 50);
    let dags = html.matches("<svg class=\"dag").count();
    assert_eq!(dags, 50);
    for (i, _) in html.match_indices("<svg") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        // Nested node viewports are the only SVGs without a viewBox.
        assert!(
            tag.contains(" viewBox=\"0 0 ") || tag.starts_with("<svg width="),
            "{tag}"
        );
    }
    for (i, _) in html.match_indices("<svg class=\"dag") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains("viewBox=\"0 0 "), "{tag}");
    }
}

#[test]
fn output_is_deterministic() {
    let a = render_board(&synthetic(6, 40), NOW, "origin");
    let b = render_board(&synthetic(6, 40), NOW, "origin");
    assert_eq!(a, b);
    let c = render_board(&realistic(), NOW, "origin");
    assert_eq!(c, render_board(&realistic(), NOW, "origin"));
    // The clock is the argument, nothing else.
    assert_ne!(c, render_board(&realistic(), NOW + 60, "origin"));
}

#[test]
fn odd_inputs_do_not_panic() {
    // Empty board.
    let html = render_board(&[], NOW, "");
    assert!(html.contains("No trains yet"));
    assert!(html.contains("No manual gate is waiting"));
    // A cycle, a self-loop, an unknown dependency, a duplicate name, an empty name,
    // unparsable times, a non-ASCII sha.
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut a = step("a", StepKind::Job, StepState::Started, &n(&["c", "ghost"]));
    a.started_at = Some("yesterday".into());
    let steps = vec![
        a,
        step("b", StepKind::Job, StepState::Pending, &n(&["a", "b"])),
        step("c", StepKind::Manual, StepState::Blocked, &n(&["b"])),
        step("a", StepKind::Virtual, StepState::Pending, &n(&["a"])),
        step("", StepKind::Target, StepState::Pending, &n(&["c"])),
    ];
    let mut t = train("9.0", TrainState::Running, steps);
    t.sha = "ééééééééééééé".into();
    t.opened_at = "not a time".into();
    let html = render_board(&[t], NOW, "origin");
    assert_eq!(node_tags(&html).len(), 5);
    // A train without steps.
    let html = render_board(&[train("10.0", TrainState::Running, vec![])], NOW, "o");
    assert!(html.contains("viewBox=\"0 0 24 24\""));
}

#[test]
fn long_names_wrap_then_truncate() {
    assert_eq!(wrap_name("lint", 21, 2), ["lint"]);
    assert_eq!(
        wrap_name("deploy_serving_staging_k8s", 21, 2),
        ["deploy_serving_", "staging_k8s"]
    );
    assert_eq!(
        wrap_name("require-manual-unblock-before-prod-deploy", 20, 2),
        ["require-manual-", "unblock-before-prod…"]
    );
    assert_eq!(wrap_name("abcdefghij", 4, 2), ["abcd", "efg…"]);
    assert_eq!(wrap_name("", 4, 2), [""]);
    for l in wrap_name("ééééééééééééééééééééééééééééééééé", 10, 2)
    {
        assert!(l.chars().count() <= 10);
    }
}

#[test]
fn isotonic_placement_keeps_order_and_spacing() {
    let y = isotonic_place(&[10.0, 10.0, 10.0], &[20.0, 20.0]);
    assert_eq!(y, [-10.0, 10.0, 30.0]);
    let y = isotonic_place(&[0.0, 100.0], &[20.0]);
    assert_eq!(y, [0.0, 100.0]);
    let y = isotonic_place(&[50.0, 0.0], &[10.0]);
    assert_eq!(y, [20.0, 30.0]);
}

#[test]
fn blocked_by_a_failure_has_its_own_colour_apart_from_a_waiting_gate() {
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Train 1: `verify` failed, so `deploy` is blocked by a failure. Train 2: its gate
    // waits for a person.
    let failed = train(
        "1.0",
        TrainState::Failed,
        vec![
            step("verify", StepKind::Job, StepState::Failure, &[]),
            step("deploy", StepKind::Job, StepState::Blocked, &n(&["verify"])),
        ],
    );
    let gated = train(
        "2.0",
        TrainState::Blocked,
        vec![
            step("verify", StepKind::Job, StepState::Success, &[]),
            step(
                "gate",
                StepKind::Manual,
                StepState::Blocked,
                &n(&["verify"]),
            ),
        ],
    );
    let html = render_board(&[failed, gated], NOW, "origin");
    let tags = node_tags(&html);
    let node = |train: &str, step: &str| {
        *tags
            .iter()
            .find(|t| t.contains(&format!("data-train=\"{train}\" data-step=\"{step}\"")))
            .unwrap()
    };
    assert!(
        node("1.0", "deploy").contains("s-blocked k-job by-failure"),
        "{tags:?}"
    );
    assert!(!node("2.0", "gate").contains("by-failure"), "{tags:?}");
    // Its own fill, and its own badge in the steps table.
    assert!(STYLE.contains(".s-blocked.by-failure .box{fill:#fff1f2"));
    assert!(STYLE.contains(".b-blocked.by-failure{"));
    assert!(html.contains("<span class=\"badge b-blocked by-failure\" title=\"blocked by a failure upstream\">blocked</span>"));
    // The legend tells the two apart.
    assert!(html.contains("blocked: waiting for a person"));
    assert!(html.contains("<g class=\"s-blocked by-failure k-job\">"));
    assert!(html.contains("blocked by a failure</span>"));
}

#[test]
fn long_step_names_are_not_cut_off() {
    let name = "deploy_serving_production_k8s_in_every_region_after_the_canary_bake";
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let t = train(
        "3.0",
        TrainState::Blocked,
        vec![
            step("a", StepKind::Job, StepState::Success, &[]),
            step(name, StepKind::Manual, StepState::Blocked, &n(&["a"])),
        ],
    );
    let lay = layout(&t.steps);
    // Every character of the name is drawn, over as many lines as it takes.
    assert_eq!(lay.boxes[1].lines.concat(), name);
    assert!(lay.boxes[1].lines.len() > 2);
    let html = render_board(&[t], NOW, "origin");
    for line in &lay.boxes[1].lines {
        assert!(html.contains(&format!(">{line}</text>")), "{line}");
    }
    // The "now" chip of the waiting gate shows the whole name too.
    assert!(html.contains(&format!("gate {name}</span>")), "chip");
}
