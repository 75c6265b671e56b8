//! The static HTML board that `konductor board --out DIR` writes.
//!
//! [`render_board`] turns train reports into one self-contained HTML document: inline
//! CSS, a few lines of inline JavaScript (the page reads fine without it), no external
//! loads of any kind, enforced by a Content-Security-Policy that admits only the page's
//! own style and script by hash. Every string that comes from tags (step names, info
//! strings reported by CI jobs, URLs, people) is HTML-escaped, and job URLs become links
//! only when they are `http(s)://`.
//!
//! Each train's step graph is drawn as an inline SVG: a layered left-to-right layout
//! (layer = longest path from a leaf), long edges routed through the layers they cross,
//! layers ordered to reduce crossings. Step nodes and train sections carry `data-*`
//! attributes so browser tests can check the page:
//! `<g data-train="N.P" data-step="name" data-state="success">` for every step and
//! `<section id="train-N.P" data-state="running">` for every train.
//!
//! The output depends only on the arguments: same input, same bytes.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::plan::{StepKind, StepState, TrainState};
use crate::report::{Placement, StepReport, TrainReport};
use crate::time::{age, parse_rfc3339, rfc3339};

/// `write!` into a `String`, which cannot fail.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {{
        let _ = write!($dst, $($arg)*);
    }};
}

/// Render the whole board as one self-contained HTML document.
///
/// `trains` is newest first (the order is kept). `generated_at` (seconds since the epoch)
/// is the only clock the page uses: ages and running times are relative to it, so the
/// same input renders the same bytes. `remote` must already be free of credentials; it
/// is escaped like everything else.
pub fn render_board(trains: &[TrainReport], generated_at: i64, remote: &str) -> String {
    let cap = 24 * 1024
        + trains
            .iter()
            .map(|t| 3072 + t.steps.len() * 1600)
            .sum::<usize>();
    let mut o = String::with_capacity(cap);
    let generated = rfc3339(generated_at);
    w!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"konductor\">\n\
         <title>Konductor board · {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        csp(),
        E(remote)
    );

    // Header.
    w!(
        o,
        "<header class=\"top\"><h1>Konductor board</h1><div class=\"meta\">\
         <span>remote <code>{}</code></span>\
         <span>generated <time datetime=\"{g}\" data-epoch=\"{generated_at}\">{}</time> \
         <span id=\"age\"></span></span><span>{} train{}</span>\
         <span class=\"muted\">all times UTC</span></div></header>\n<main>\n",
        E(remote),
        E(&show_time(&generated)),
        trains.len(),
        plural(trains.len()),
        g = E(&generated),
    );

    let waiting = waiting_gates(trains);
    cards(&mut o, trains, waiting.len(), generated_at);
    waiting_section(&mut o, &waiting, generated_at);
    train_list(&mut o, trains, generated_at);

    // Per-train sections.
    w!(
        o,
        "<section id=\"graphs\">\n<h2>Step graphs</h2>\n<div class=\"bar-row\">{}\
         <div id=\"tools\" class=\"tools\" hidden>\
         <button type=\"button\" data-act=\"open\">Expand all</button>\
         <button type=\"button\" data-act=\"close\">Collapse all</button></div></div>\n",
        legend()
    );
    if trains.is_empty() {
        o.push_str("<p class=\"muted\">No trains yet.</p>\n");
    }
    for (i, t) in trains.iter().enumerate() {
        let open = i < 3 || t.state == TrainState::Running;
        train_section(&mut o, t, open, generated_at);
    }
    o.push_str("</section>\n</main>\n");
    w!(
        o,
        "<footer>Rendered by <code>konductor board</code> from the tags on <code>{}</code> \
         at {}. Git tags are the only state; this page is a snapshot.</footer>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        E(remote),
        E(&generated)
    );
    o
}

// ---------------------------------------------------------------------------------------
// Page sections.

fn cards(o: &mut String, trains: &[TrainReport], waiting: usize, now: i64) {
    o.push_str("<section class=\"cards\" id=\"environments\">\n");
    let prod = trains.iter().find(|t| t.placement == Placement::Production);
    let staging = trains
        .iter()
        .find(|t| matches!(t.placement, Placement::Staging | Placement::Production));
    env_card(
        o,
        "prod",
        "Production",
        prod,
        now,
        "No train has reached production yet.",
    );
    env_card(
        o,
        "staging",
        "Staging",
        staging,
        now,
        "No train has reached staging yet.",
    );
    o.push_str(
        "<article class=\"card summary\"><div class=\"label\">Trains</div><div class=\"counts\">",
    );
    for st in [
        TrainState::Running,
        TrainState::Blocked,
        TrainState::Failed,
        TrainState::Succeeded,
        TrainState::Cancelled,
    ] {
        let n = trains.iter().filter(|t| t.state == st).count();
        w!(
            o,
            "<span class=\"cnt{}\"><b>{n}</b> <span class=\"badge b-{s}\">{s}</span></span>",
            if n == 0 { " zero" } else { "" },
            s = st.as_str()
        );
    }
    w!(
        o,
        "</div><div class=\"sub\">{}</div></article>\n</section>\n",
        if waiting == 0 {
            "nobody is needed right now".to_string()
        } else {
            format!(
                "<a href=\"#waiting\">{waiting} manual gate{} waiting</a>",
                plural(waiting)
            )
        }
    );
}

fn env_card(
    o: &mut String,
    class: &str,
    label: &str,
    t: Option<&TrainReport>,
    now: i64,
    empty: &str,
) {
    w!(
        o,
        "<article class=\"card env {class}\" id=\"env-{class}\"><div class=\"label\">{label}</div>"
    );
    match t {
        Some(t) => w!(
            o,
            "<div class=\"big\"><a href=\"#train-{id}\">{id}</a> {}</div>\
             <div>commit <code>{}</code> · target <code>{}</code></div>\
             <div class=\"sub\">opened {} by {}</div></article>\n",
            badge(t.state.as_str()),
            E(short_sha(&t.sha)),
            E(&t.target),
            when(&t.opened_at, now),
            person(&t.opened_by),
            id = E(&t.train),
        ),
        None => w!(
            o,
            "<div class=\"big none\">—</div><div class=\"sub\">{empty}</div></article>\n"
        ),
    }
}

/// A manual gate someone has to unblock.
struct Waiting<'a> {
    train: &'a TrainReport,
    step: &'a StepReport,
    since: Option<i64>,
}

fn waiting_gates(trains: &[TrainReport]) -> Vec<Waiting<'_>> {
    let mut out = Vec::new();
    for t in trains {
        if t.state == TrainState::Cancelled {
            continue;
        }
        for s in &t.steps {
            if s.kind == StepKind::Manual && s.state == StepState::Blocked && ready(t, s) {
                out.push(Waiting {
                    train: t,
                    step: s,
                    since: ready_since(t, s),
                });
            }
        }
    }
    out
}

/// Whether every dependency of `s` is done.
fn ready(t: &TrainReport, s: &StepReport) -> bool {
    s.needs
        .iter()
        .all(|n| t.step(n).is_none_or(|d| d.state.is_done()))
}

/// When the last step upstream of `s` finished (the closest thing to "waiting since").
fn ready_since(t: &TrainReport, s: &StepReport) -> Option<i64> {
    let mut seen: Vec<&str> = Vec::new();
    let mut stack: Vec<&str> = s.needs.iter().map(String::as_str).collect();
    let mut latest: Option<i64> = None;
    while let Some(n) = stack.pop() {
        if seen.contains(&n) {
            continue;
        }
        seen.push(n);
        if let Some(d) = t.step(n) {
            if let Some(at) = d.finished_at.as_deref().and_then(parse_rfc3339) {
                latest = Some(latest.map_or(at, |l: i64| l.max(at)));
            }
            stack.extend(d.needs.iter().map(String::as_str));
        }
    }
    latest
}

fn waiting_section(o: &mut String, waiting: &[Waiting<'_>], now: i64) {
    w!(
        o,
        "<section id=\"waiting\" class=\"waiting{}\">\n<h2>Waiting for someone \
         <span class=\"count\">{}</span></h2>\n",
        if waiting.is_empty() { " none" } else { "" },
        waiting.len()
    );
    if waiting.is_empty() {
        o.push_str(
            "<p class=\"muted\">No manual gate is waiting for an unblock.</p>\n</section>\n",
        );
        return;
    }
    o.push_str("<ul>\n");
    for wt in waiting {
        let since = wt
            .since
            .map(|at| {
                format!(
                    " · ready since {} ({} ago)",
                    E(&show_time(&rfc3339(at))),
                    age(now.saturating_sub(at))
                )
            })
            .unwrap_or_default();
        w!(
            o,
            "<li><div><a href=\"#train-{id}\">train {id}</a> · gate <code>{step}</code>{since}\
             {reason}</div><div class=\"cmd\">to unblock: <code>konductor unblock --train {id} \
             --step {step} --reason \"…\"</code></div></li>\n",
            id = E(&wt.train.train),
            step = E(&wt.step.name),
            reason = wt
                .step
                .reason
                .as_deref()
                .map(|r| format!(" · <span class=\"muted\">{}</span>", E(r)))
                .unwrap_or_default(),
        );
    }
    o.push_str("</ul>\n</section>\n");
}

fn train_list(o: &mut String, trains: &[TrainReport], now: i64) {
    w!(
        o,
        "<section id=\"trains\">\n<h2>Trains <span class=\"count\">{}</span></h2>\n",
        trains.len()
    );
    if trains.is_empty() {
        o.push_str("<p class=\"muted\">No trains yet: open one with <code>konductor start</code>.</p>\n</section>\n");
        return;
    }
    o.push_str(
        "<div class=\"scroll\"><table class=\"list\"><thead><tr><th>Train</th><th>State</th>\
         <th>Where</th><th>Now</th><th>Commit</th><th>Opened</th><th>Progress</th>\
         <th>Warnings</th></tr></thead>\n<tbody>\n",
    );
    for t in trains {
        let (done, total) = progress(t);
        let place = match t.placement {
            Placement::Production => "<span class=\"place prod\">production</span>",
            Placement::Staging => "<span class=\"place staging\">staging</span>",
            Placement::None => "<span class=\"muted\">—</span>",
        };
        w!(
            o,
            "<tr><td class=\"tn\"><a href=\"#train-{id}\">{id}</a></td><td>{}</td><td>{place}</td>\
             <td>{}</td><td><code>{}</code></td><td class=\"op\">{} · {}</td>\
             <td class=\"prog\">{} <span>{done}/{total}</span></td><td>{}</td></tr>\n",
            badge(t.state.as_str()),
            now_summary(t),
            E(short_sha(&t.sha)),
            when(&t.opened_at, now),
            person(&t.opened_by),
            progress_bar(t),
            if t.warnings.is_empty() {
                "<span class=\"muted\">0</span>".to_string()
            } else {
                format!(
                    "<a class=\"warncount\" href=\"#train-{}\">⚠ {}</a>",
                    E(&t.train),
                    t.warnings.len()
                )
            },
            id = E(&t.train),
        );
    }
    o.push_str("</tbody></table></div>\n</section>\n");
}

/// What a train is doing right now, as a few chips.
fn now_summary(t: &TrainReport) -> String {
    if t.state == TrainState::Cancelled {
        return format!(
            "<span class=\"muted\">cancelled{}{}</span>",
            t.cancelled_by
                .as_deref()
                .map(|b| format!(" by {}", E(b)))
                .unwrap_or_default(),
            t.cancel_reason
                .as_deref()
                .map(|r| format!(": {}", E(r)))
                .unwrap_or_default()
        );
    }
    if t.state == TrainState::Succeeded {
        return "<span class=\"muted\">done</span>".into();
    }
    let mut chips: Vec<(&str, &str, &str)> = Vec::new();
    for s in &t.steps {
        match s.state {
            StepState::Failure => chips.push(("failure", "✗", &s.name)),
            StepState::Started => chips.push(("started", "●", &s.name)),
            StepState::Triggered => chips.push(("triggered", "○", &s.name)),
            StepState::Blocked if s.kind == StepKind::Manual && ready(t, s) => {
                chips.push(("blocked", "gate", &s.name))
            }
            _ => {}
        }
    }
    if chips.is_empty() {
        return "<span class=\"muted\">—</span>".into();
    }
    let mut out = String::new();
    for (state, sym, name) in chips.iter().take(3) {
        w!(
            out,
            "<span class=\"chip b-{state}\" title=\"{}: {}\">{sym} {}</span> ",
            E(state),
            E(name),
            E(&ellipsize(name, 28))
        );
    }
    if chips.len() > 3 {
        w!(
            out,
            "<span class=\"muted\">+{} more</span>",
            chips.len() - 3
        );
    }
    out
}

fn progress(t: &TrainReport) -> (usize, usize) {
    (
        t.steps.iter().filter(|s| s.state.is_done()).count(),
        t.steps.len(),
    )
}

/// A small stacked bar: done, running, failed, blocked; the rest is pending.
fn progress_bar(t: &TrainReport) -> String {
    let total = t.steps.len().max(1) as f64;
    let count = |f: &dyn Fn(StepState) -> bool| t.steps.iter().filter(|s| f(s.state)).count();
    let parts = [
        ("success", count(&|s| s.is_done())),
        (
            "started",
            count(&|s| matches!(s, StepState::Started | StepState::Triggered)),
        ),
        ("failure", count(&|s| s == StepState::Failure)),
        ("blocked", count(&|s| s == StepState::Blocked)),
    ];
    let mut out = String::from(
        "<svg class=\"pbar\" viewBox=\"0 0 100 8\" width=\"100\" height=\"8\" aria-hidden=\"true\">\
         <rect class=\"pb-bg\" width=\"100\" height=\"8\" rx=\"4\"/>",
    );
    let mut x = 0.0;
    for (class, n) in parts {
        if n == 0 {
            continue;
        }
        let wdt = 100.0 * n as f64 / total;
        w!(
            out,
            "<rect class=\"pb-{class}\" x=\"{:.1}\" width=\"{:.1}\" height=\"8\"/>",
            x,
            wdt
        );
        x += wdt;
    }
    out.push_str("</svg>");
    out
}

fn legend() -> String {
    let mut o = String::from("<div class=\"legend\" aria-label=\"legend\">");
    for st in [
        StepState::Pending,
        StepState::Triggered,
        StepState::Started,
        StepState::Success,
        StepState::Failure,
        StepState::Blocked,
        StepState::Skipped,
    ] {
        w!(
            o,
            "<span><svg class=\"sw\" viewBox=\"0 0 30 18\" width=\"30\" height=\"18\" \
             aria-hidden=\"true\"><g class=\"s-{s} k-job\"><rect class=\"box\" x=\"1.5\" \
             y=\"1.5\" width=\"27\" height=\"15\" rx=\"4\"/></g></svg>{s}</span>",
            s = st.as_str()
        );
    }
    o.push_str(
        "<span class=\"sep\"></span>\
         <span><svg class=\"sw\" viewBox=\"0 0 30 18\" width=\"30\" height=\"18\" aria-hidden=\"true\">\
         <g class=\"s-pending k-manual\"><polygon class=\"box\" points=\"1.5,9 7,1.5 23,1.5 28.5,9 23,16.5 7,16.5\"/></g>\
         </svg>manual gate</span>\
         <span><svg class=\"sw\" viewBox=\"0 0 30 18\" width=\"30\" height=\"18\" aria-hidden=\"true\">\
         <g class=\"s-pending k-virtual\"><rect class=\"box\" x=\"1.5\" y=\"1.5\" width=\"27\" height=\"15\" rx=\"7\"/></g>\
         </svg>virtual step / target</span>\
         <span class=\"muted\">hover a step for details; click it to open its CI job</span></div>",
    );
    o
}

fn train_section(o: &mut String, t: &TrainReport, open: bool, now: i64) {
    let (done, total) = progress(t);
    w!(
        o,
        "<section class=\"train\" id=\"train-{id}\" data-train=\"{id}\" data-state=\"{st}\">\n\
         <details{}>\n<summary><span class=\"tname\">Train {id}</span> {} \
         <span class=\"sum\">{done}/{total} steps done · target <code>{}</code> · commit \
         <code>{}</code> · opened {} by {}</span>{}</summary>\n<div class=\"body\">\n",
        if open { " open" } else { "" },
        badge(t.state.as_str()),
        E(&t.target),
        E(short_sha(&t.sha)),
        when(&t.opened_at, now),
        person(&t.opened_by),
        if t.warnings.is_empty() {
            String::new()
        } else {
            format!(
                " <span class=\"warnchip\">⚠ {} warning{}</span>",
                t.warnings.len(),
                plural(t.warnings.len())
            )
        },
        id = E(&t.train),
        st = t.state.as_str(),
    );
    if t.state == TrainState::Cancelled {
        w!(
            o,
            "<div class=\"note\">Cancelled{}{}.</div>\n",
            t.cancelled_by
                .as_deref()
                .map(|b| format!(" by {}", E(b)))
                .unwrap_or_default(),
            t.cancel_reason
                .as_deref()
                .map(|r| format!(": {}", E(r)))
                .unwrap_or_default()
        );
    }
    if !t.warnings.is_empty() {
        w!(
            o,
            "<div class=\"warn\" role=\"note\"><b>⚠ {} tag{} ignored or distrusted on this train</b><ul>",
            t.warnings.len(),
            plural(t.warnings.len())
        );
        for wn in &t.warnings {
            w!(o, "<li>{}</li>", E(wn));
        }
        o.push_str("</ul></div>\n");
    }
    graph_svg(o, t, now);
    steps_table(o, t, now);
    o.push_str("</div>\n</details>\n</section>\n");
}

fn steps_table(o: &mut String, t: &TrainReport, now: i64) {
    o.push_str(
        "<div class=\"scroll\"><table class=\"steps\"><thead><tr><th>Step</th><th>State</th>\
         <th>Attempt</th><th>Started</th><th>Duration</th><th>Job</th><th>Details</th></tr>\
         </thead><tbody>\n",
    );
    for s in &t.steps {
        let kind = match s.kind {
            StepKind::Job => "",
            StepKind::Virtual => " <span class=\"kind\">virtual</span>",
            StepKind::Manual => " <span class=\"kind\">manual gate</span>",
            StepKind::Target => " <span class=\"kind\">target</span>",
        };
        let attempt = if s.attempt == 0 {
            "<span class=\"muted\">—</span>".to_string()
        } else {
            let history = s
                .attempts
                .iter()
                .map(|a| match a.rerun {
                    Some(k) => format!("#{}: {} (re-run {k})", a.attempt, a.state),
                    None => format!("#{}: {}", a.attempt, a.state),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let rerun = s
                .attempts
                .iter()
                .find(|a| a.attempt == s.attempt)
                .and_then(|a| a.rerun)
                .map_or(String::new(), |k| {
                    format!(" <span class=\"muted\">re-run {k}</span>")
                });
            format!(
                "<span title=\"{}\">#{}{rerun}{}</span>",
                E(&history),
                s.attempt,
                if s.attempts.len() > 1 {
                    format!(" <span class=\"muted\">of {}</span>", s.attempts.len())
                } else {
                    String::new()
                }
            )
        };
        let started = match (&s.started_at, &s.triggered_at) {
            (Some(st), _) => stamp(st),
            (None, Some(tr)) => format!("<span class=\"muted\">triggered</span> {}", stamp(tr)),
            _ => String::new(),
        };
        let duration = match (s.duration_secs, &s.started_at, s.state) {
            (Some(d), _, _) => duration(d),
            (None, Some(st), StepState::Started) => parse_rfc3339(st)
                .map(|at| {
                    format!(
                        "<span class=\"muted\">running</span> {}",
                        duration(now.saturating_sub(at))
                    )
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let job = match s.job_url.as_deref() {
            Some(u) => match safe_url(u) {
                Some(u) => format!(
                    "<a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">job ↗</a>",
                    E(u)
                ),
                None => format!(
                    "<span class=\"badurl\" title=\"not an http(s) URL: not linked\">{}</span>",
                    E(&ellipsize(u, 40))
                ),
            },
            None => String::new(),
        };
        let mut details = String::new();
        if let Some(r) = &s.reason {
            w!(details, "<div>{}</div>", E(r));
        }
        if let Some(by) = &s.unblocked_by {
            w!(
                details,
                "<div>unblocked by {}{}</div>",
                E(by),
                s.unblocked_at
                    .as_deref()
                    .map(|a| format!(" at {}", E(&show_time(a))))
                    .unwrap_or_default()
            );
        }
        if let Some(info) = display_info(s) {
            w!(
                details,
                "<div class=\"info\" title=\"{}\">{}</div>",
                E(&info),
                E(&ellipsize(&info, 160))
            );
        }
        w!(
            o,
            "<tr class=\"r-{st}\"><td><code>{}</code>{kind}</td><td>{}</td><td>{attempt}</td>\
             <td>{started}</td><td>{duration}</td><td>{job}</td><td class=\"det\">{details}</td></tr>\n",
            E(&s.name),
            badge(st_label(s)),
            st = s.state.as_str(),
        );
    }
    o.push_str("</tbody></table></div>\n");
}

/// The info string without the `job_url:` part (shown as a link already).
fn display_info(s: &StepReport) -> Option<String> {
    let info = s.info.as_deref()?.trim();
    let info = match s.job_url.as_deref() {
        Some(u) => info
            .replace(&format!("job_url: {u}"), "")
            .replace(&format!("job_url:{u}"), ""),
        None => info.to_string(),
    };
    let info = info.split_whitespace().collect::<Vec<_>>().join(" ");
    (!info.is_empty()).then_some(info)
}

fn st_label(s: &StepReport) -> &'static str {
    s.state.as_str()
}

// ---------------------------------------------------------------------------------------
// The step graph.

const NODE_W: f64 = 172.0;
const SMALL_W: f64 = 124.0;
const GAP_X: f64 = 38.0;
const GAP_Y: f64 = 18.0;
const DUMMY_GAP: f64 = 9.0;
const MARGIN: f64 = 12.0;
const ARROW: f64 = 7.0;
/// Advance of one character of the 12px monospace step-name font (0.6 em, rounded up).
const NAME_CHAR_W: f64 = 7.3;
/// Average advance of one character of the 11px status line.
const STATUS_CHAR_W: f64 = 6.4;
/// Graphs up to this width shrink to the page; wider ones scroll.
const FIT_MAX: f64 = 1750.0;

/// Where one step is drawn.
#[derive(Debug, Clone)]
struct NodeBox {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    pad: f64,
    lines: Vec<String>,
}

/// One drawn edge: the curve and its arrowhead tip.
#[derive(Debug, Clone)]
struct EdgeDraw {
    from: usize,
    path: String,
    tip: (f64, f64),
}

#[derive(Debug, Clone)]
struct Layout {
    width: f64,
    height: f64,
    layer: Vec<usize>,
    boxes: Vec<NodeBox>,
    edges: Vec<EdgeDraw>,
}

/// A node or a routing point of a long edge in one layer.
struct Item {
    layer: usize,
    node: Option<usize>,
    h: f64,
    up: Vec<usize>,
    down: Vec<usize>,
}

/// The layer of each step: the longest path from a leaf. Cycles (which a validated graph
/// never has) are cut off at `n - 1` so that the layout stays bounded.
fn layers(preds: &[Vec<usize>]) -> Vec<usize> {
    let n = preds.len();
    let cap = n.saturating_sub(1);
    let mut layer = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for (i, ps) in preds.iter().enumerate() {
            let l = ps.iter().map(|&p| layer[p] + 1).max().unwrap_or(0).min(cap);
            if l > layer[i] {
                layer[i] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

fn layout(steps: &[StepReport]) -> Layout {
    let n = steps.len();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        index.entry(s.name.as_str()).or_insert(i);
    }
    let preds: Vec<Vec<usize>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v: Vec<usize> = Vec::new();
            for d in &s.needs {
                if let Some(&p) = index.get(d.as_str()) {
                    if p != i && !v.contains(&p) {
                        v.push(p);
                    }
                }
            }
            v
        })
        .collect();
    let layer = layers(&preds);
    let nlayers = layer.iter().max().map_or(0, |m| m + 1);

    // Node sizes and wrapped names.
    let mut boxes: Vec<NodeBox> = steps
        .iter()
        .map(|s| {
            let (w, pad) = match s.kind {
                StepKind::Job => (NODE_W, 10.0),
                StepKind::Manual => (NODE_W, 17.0),
                StepKind::Virtual | StepKind::Target => (SMALL_W, 13.0),
            };
            let max = ((w - 2.0 * pad) / NAME_CHAR_W).floor().max(4.0) as usize;
            let lines = wrap_name(&s.name, max, 2);
            let h = 31.0 + 15.0 * lines.len() as f64;
            NodeBox {
                x: 0.0,
                y: 0.0,
                w,
                h,
                pad,
                lines,
            }
        })
        .collect();

    // Items: nodes first, then one routing point per layer crossed by a long edge.
    let mut items: Vec<Item> = (0..n)
        .map(|i| Item {
            layer: layer[i],
            node: Some(i),
            h: boxes[i].h,
            up: Vec::new(),
            down: Vec::new(),
        })
        .collect();
    // (from, to, routing points)
    let mut chains: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for (i, ps) in preds.iter().enumerate() {
        for &p in ps {
            let mut via = Vec::new();
            if layer[p] < layer[i] {
                let mut prev = p;
                for l in layer[p] + 1..layer[i] {
                    let id = items.len();
                    items.push(Item {
                        layer: l,
                        node: None,
                        h: 0.0,
                        up: vec![prev],
                        down: Vec::new(),
                    });
                    items[prev].down.push(id);
                    via.push(id);
                    prev = id;
                }
                items[prev].down.push(i);
                items[i].up.push(prev);
            }
            chains.push((p, i, via));
        }
    }

    // Order within layers: barycenter sweeps, keeping the order with fewest crossings.
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); nlayers];
    for (id, it) in items.iter().enumerate() {
        order[it.layer].push(id);
    }
    let mut best = order.clone();
    let mut best_crossings = crossings(&order, &items);
    for round in 0..12 {
        if best_crossings == 0 {
            break;
        }
        sweep(&mut order, &items, round % 2 == 0);
        let c = crossings(&order, &items);
        if c < best_crossings {
            best_crossings = c;
            best = order.clone();
        }
    }
    let order = best;

    // Vertical positions (centers).
    let sep = |a: usize, b: usize| {
        let gap = if items[a].node.is_some() && items[b].node.is_some() {
            GAP_Y
        } else {
            DUMMY_GAP
        };
        (items[a].h + items[b].h) / 2.0 + gap
    };
    let mut y = vec![0.0f64; items.len()];
    for ord in &order {
        let mut acc = 0.0;
        let mut offs = Vec::with_capacity(ord.len());
        for (k, &id) in ord.iter().enumerate() {
            if k > 0 {
                acc += sep(ord[k - 1], id);
            }
            offs.push(acc);
        }
        for (k, &id) in ord.iter().enumerate() {
            y[id] = offs[k] - acc / 2.0;
        }
    }
    let place = |y: &mut Vec<f64>, l: usize, up: bool, down: bool| {
        let ord = &order[l];
        if ord.is_empty() {
            return;
        }
        let desired: Vec<f64> = ord
            .iter()
            .map(|&id| {
                let mut nb: Vec<usize> = Vec::new();
                if up {
                    nb.extend(&items[id].up);
                }
                if down {
                    nb.extend(&items[id].down);
                }
                if nb.is_empty() {
                    y[id]
                } else {
                    nb.iter().map(|&x| y[x]).sum::<f64>() / nb.len() as f64
                }
            })
            .collect();
        let seps: Vec<f64> = ord.windows(2).map(|p| sep(p[0], p[1])).collect();
        let placed = isotonic_place(&desired, &seps);
        for (k, &id) in ord.iter().enumerate() {
            y[id] = placed[k];
        }
    };
    for round in 0..4 {
        if round % 2 == 0 {
            for l in 1..nlayers {
                place(&mut y, l, true, false);
            }
        } else {
            for l in (0..nlayers.saturating_sub(1)).rev() {
                place(&mut y, l, false, true);
            }
        }
    }
    for _ in 0..2 {
        for l in 0..nlayers {
            place(&mut y, l, true, true);
        }
    }
    let top = items
        .iter()
        .enumerate()
        .map(|(id, it)| y[id] - it.h / 2.0)
        .fold(f64::INFINITY, f64::min);
    let shift = if top.is_finite() { MARGIN - top } else { 0.0 };
    for v in &mut y {
        *v += shift;
    }
    let height = items
        .iter()
        .enumerate()
        .map(|(id, it)| y[id] + it.h / 2.0)
        .fold(0.0f64, f64::max)
        + MARGIN;

    // Horizontal positions: one column per layer.
    let mut col_w = vec![0.0f64; nlayers];
    for (i, b) in boxes.iter().enumerate() {
        col_w[layer[i]] = col_w[layer[i]].max(b.w);
    }
    let mut col_x = vec![0.0f64; nlayers];
    let mut x = MARGIN;
    for l in 0..nlayers {
        col_x[l] = x;
        x += col_w[l] + GAP_X;
    }
    let width = if nlayers == 0 {
        2.0 * MARGIN
    } else {
        x - GAP_X + MARGIN
    };
    for (i, b) in boxes.iter_mut().enumerate() {
        b.x = col_x[layer[i]] + (col_w[layer[i]] - b.w) / 2.0;
        b.y = y[i] - b.h / 2.0;
    }

    // Ports: spread a node's edges along its side, in the order of their other ends.
    let mut out_port = vec![0.0f64; chains.len()];
    let mut in_port = vec![0.0f64; chains.len()];
    for (i, b) in boxes.iter().enumerate() {
        let spread = |mut ends: Vec<(f64, usize)>, ports: &mut Vec<f64>| {
            ends.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let k = ends.len();
            let step = if k <= 1 || steps[i].kind == StepKind::Manual {
                0.0
            } else {
                ((b.h - 18.0) / (k - 1) as f64).min(8.0)
            };
            for (j, (_, ci)) in ends.into_iter().enumerate() {
                ports[ci] = y[i] + (j as f64 - (k - 1) as f64 / 2.0) * step;
            }
        };
        let outs: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 == i)
            .map(|(ci, c)| (y[c.2.first().copied().unwrap_or(c.1)], ci))
            .collect();
        spread(outs, &mut out_port);
        let ins: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1 == i)
            .map(|(ci, c)| (y[c.2.last().copied().unwrap_or(c.0)], ci))
            .collect();
        spread(ins, &mut in_port);
    }

    let edges = chains
        .iter()
        .enumerate()
        .map(|(ci, (p, q, via))| {
            let a = &boxes[*p];
            let b = &boxes[*q];
            let mut pts = vec![(a.x + a.w, out_port[ci])];
            for &d in via {
                let l = items[d].layer;
                pts.push((col_x[l], y[d]));
                pts.push((col_x[l] + col_w[l], y[d]));
            }
            let tip = (b.x, in_port[ci]);
            pts.push((tip.0 - ARROW + 1.0, tip.1));
            let mut path = format!("M{} {}", r(pts[0].0), r(pts[0].1));
            for k in 1..pts.len() {
                let (a, b) = (pts[k - 1], pts[k]);
                if k % 2 == 1 {
                    let dx = ((b.0 - a.0) / 2.0).abs().max(24.0);
                    w!(
                        path,
                        "C{} {} {} {} {} {}",
                        r(a.0 + dx),
                        r(a.1),
                        r(b.0 - dx),
                        r(b.1),
                        r(b.0),
                        r(b.1)
                    );
                } else {
                    w!(path, "H{}", r(b.0));
                }
            }
            EdgeDraw {
                from: *p,
                path,
                tip,
            }
        })
        .collect();

    Layout {
        width,
        height: height.max(2.0 * MARGIN),
        layer,
        boxes,
        edges,
    }
}

/// One barycenter sweep, down (by the layer above) or up (by the layer below).
fn sweep(order: &mut [Vec<usize>], items: &[Item], down: bool) {
    let mut pos = vec![0.0f64; items.len()];
    for ord in order.iter() {
        for (k, &id) in ord.iter().enumerate() {
            pos[id] = k as f64;
        }
    }
    let nl = order.len();
    let layers: Vec<usize> = if down {
        (1..nl).collect()
    } else {
        (0..nl.saturating_sub(1)).rev().collect()
    };
    for l in layers {
        let mut keyed: Vec<(f64, f64, usize)> = order[l]
            .iter()
            .map(|&id| {
                let nb = if down { &items[id].up } else { &items[id].down };
                let key = if nb.is_empty() {
                    pos[id]
                } else {
                    nb.iter().map(|&x| pos[x]).sum::<f64>() / nb.len() as f64
                };
                (key, pos[id], id)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        order[l] = keyed.into_iter().map(|k| k.2).collect();
        for (k, &id) in order[l].iter().enumerate() {
            pos[id] = k as f64;
        }
    }
}

/// Edge crossings between adjacent layers.
fn crossings(order: &[Vec<usize>], items: &[Item]) -> usize {
    let mut pos = vec![0usize; items.len()];
    for ord in order {
        for (k, &id) in ord.iter().enumerate() {
            pos[id] = k;
        }
    }
    let mut total = 0;
    for ord in order {
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for &u in ord {
            for &v in &items[u].down {
                pairs.push((pos[u], pos[v]));
            }
        }
        pairs.sort_unstable();
        for (k, a) in pairs.iter().enumerate() {
            total += pairs[k + 1..]
                .iter()
                .filter(|b| b.0 > a.0 && b.1 < a.1)
                .count();
        }
    }
    total
}

/// Positions as close as possible (least squares) to `desired`, in order, with at least
/// `seps[k]` between item `k` and `k + 1`: isotonic regression by pool-adjacent-violators.
fn isotonic_place(desired: &[f64], seps: &[f64]) -> Vec<f64> {
    let mut offs = Vec::with_capacity(desired.len());
    let mut acc = 0.0;
    for k in 0..desired.len() {
        if k > 0 {
            acc += seps[k - 1];
        }
        offs.push(acc);
    }
    // blocks of (mean, count)
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (d, off) in desired.iter().zip(&offs) {
        blocks.push((d - off, 1));
        while blocks.len() > 1 {
            let (m2, c2) = blocks[blocks.len() - 1];
            let (m1, c1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (
                (m1 * c1 as f64 + m2 * c2 as f64) / (c1 + c2) as f64,
                c1 + c2,
            );
        }
    }
    let mut out = Vec::with_capacity(desired.len());
    for (m, c) in blocks {
        for _ in 0..c {
            out.push(m + offs[out.len()]);
        }
    }
    out
}

/// Break a step name into at most `max_lines` lines of at most `max` characters,
/// preferably after `_`, `-`, `.` or `/`; the last line ends in `…` if it doesn't fit.
fn wrap_name(name: &str, max: usize, max_lines: usize) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut lines = Vec::new();
    let mut start = 0;
    while start < chars.len() && lines.len() < max_lines {
        let rest = &chars[start..];
        if rest.len() <= max {
            lines.push(rest.iter().collect());
            break;
        }
        if lines.len() + 1 == max_lines {
            let mut s: String = rest[..max - 1].iter().collect();
            s.push('…');
            lines.push(s);
            break;
        }
        let cut = rest[..max]
            .iter()
            .rposition(|c| matches!(c, '_' | '-' | '.' | '/' | ' ' | ':'))
            .map(|p| p + 1)
            .filter(|&p| p >= max / 3)
            .unwrap_or(max);
        lines.push(rest[..cut].iter().collect());
        start += cut;
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

fn graph_svg(o: &mut String, t: &TrainReport, now: i64) {
    let lay = layout(&t.steps);
    let (wd, ht) = (r(lay.width), r(lay.height));
    w!(
        o,
        "<div class=\"graph\"><svg class=\"dag{}\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {wd} {ht}\" width=\"{wd}\" height=\"{ht}\" role=\"img\" \
         aria-label=\"step graph of train {}\" data-layers=\"{}\">\n<g class=\"edges\">",
        if lay.width <= FIT_MAX { " fit" } else { "" },
        E(&t.train),
        lay.layer.iter().max().map_or(0, |m| m + 1)
    );
    for e in &lay.edges {
        let class = if t.steps[e.from].state.is_done() {
            "e d"
        } else {
            "e"
        };
        let (tx, ty) = (r(e.tip.0), r(e.tip.1));
        w!(
            o,
            "<path class=\"{class}\" d=\"{}\"/><path class=\"a{}\" d=\"M{tx} {ty}l-{a} -4v8z\"/>",
            e.path,
            if class == "e d" { " d" } else { "" },
            a = ARROW as i64
        );
    }
    o.push_str("</g>\n");
    for (s, b) in t.steps.iter().zip(&lay.boxes) {
        node(o, t, s, b, now);
    }
    o.push_str("</svg></div>\n");
    if lay.width > FIT_MAX {
        w!(
            o,
            "<div class=\"cap\">{} steps in {} layers: scroll the graph sideways to see it all →</div>\n",
            t.steps.len(),
            lay.layer.iter().max().map_or(0, |m| m + 1)
        );
    }
}

fn node(o: &mut String, t: &TrainReport, s: &StepReport, b: &NodeBox, now: i64) {
    let kind = match s.kind {
        StepKind::Job => "job",
        StepKind::Virtual => "virtual",
        StepKind::Manual => "manual",
        StepKind::Target => "target",
    };
    let state = s.state.as_str();
    w!(
        o,
        "<g class=\"n s-{state} k-{kind}\" data-train=\"{}\" data-step=\"{}\" \
         data-state=\"{state}\" transform=\"translate({} {})\"><title>{}</title>",
        E(&t.train),
        E(&s.name),
        r(b.x),
        r(b.y),
        E(&tooltip(t, s))
    );
    let link = s.job_url.as_deref().and_then(safe_url);
    if let Some(u) = link {
        w!(
            o,
            "<a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">",
            E(u)
        );
    }
    let (wd, ht) = (r(b.w), r(b.h));
    match s.kind {
        StepKind::Manual => {
            let c = 12;
            w!(
                o,
                "<polygon class=\"box\" points=\"0,{m} {c},0 {x1},0 {wd},{m} {x1},{ht} {c},{ht}\"/>",
                m = r(b.h / 2.0),
                x1 = wd - c
            );
        }
        StepKind::Virtual | StepKind::Target => w!(
            o,
            "<rect class=\"box\" width=\"{wd}\" height=\"{ht}\" rx=\"14\"/>"
        ),
        StepKind::Job => w!(
            o,
            "<rect class=\"box\" width=\"{wd}\" height=\"{ht}\" rx=\"7\"/>"
        ),
    }
    // An inner viewport clips text that outgrows the estimate.
    w!(o, "<svg width=\"{wd}\" height=\"{ht}\">");
    let pad = r(b.pad);
    for (k, line) in b.lines.iter().enumerate() {
        w!(
            o,
            "<text class=\"nm\" x=\"{pad}\" y=\"{}\">{}</text>",
            19 + 15 * k as i64,
            E(line)
        );
    }
    let max = ((b.w - 2.0 * b.pad) / STATUS_CHAR_W).floor().max(4.0) as usize;
    w!(
        o,
        "<text class=\"st\" x=\"{pad}\" y=\"{}\">{}</text></svg>",
        19 + 15 * (b.lines.len() as i64 - 1) + 17,
        E(&ellipsize(&status_line(t, s, now), max))
    );
    if s.attempt > 1 && s.kind == StepKind::Job {
        w!(
            o,
            "<text class=\"att\" x=\"{}\" y=\"13\" text-anchor=\"end\">#{}</text>",
            wd - 6,
            s.attempt
        );
    }
    if link.is_some() {
        o.push_str("</a>");
    }
    o.push_str("</g>\n");
}

/// The short second line of a node.
fn status_line(t: &TrainReport, s: &StepReport, now: i64) -> String {
    let run = |d: Option<i64>| d.map(|d| format!(" · {}", duration(d))).unwrap_or_default();
    match (s.kind, s.state) {
        (StepKind::Manual, StepState::Blocked) if ready(t, s) => "⚑ waiting for unblock".into(),
        (StepKind::Virtual | StepKind::Target, StepState::Blocked) => "blocked".into(),
        (_, StepState::Blocked) => "blocked by a failure".into(),
        (StepKind::Manual, StepState::Success) => match &s.unblocked_by {
            Some(by) => format!("✓ unblocked by {by}"),
            None => "✓ unblocked".into(),
        },
        (StepKind::Virtual | StepKind::Target, StepState::Success) => "✓ reached".into(),
        (StepKind::Virtual | StepKind::Target, StepState::Pending) => "not reached".into(),
        (_, StepState::Pending) => match s.reason.as_deref() {
            Some(r) if r.contains("if_changed") => "pending: evaluating".into(),
            _ => "pending".into(),
        },
        (_, StepState::Triggered) => "○ triggered, waiting for CI".into(),
        (_, StepState::Started) => format!(
            "● running{}",
            run(s
                .started_at
                .as_deref()
                .and_then(parse_rfc3339)
                .map(|at| now.saturating_sub(at)))
        ),
        (_, StepState::Success) => format!("✓ success{}", run(s.duration_secs)),
        (_, StepState::Failure) => format!("✗ failed{}", run(s.duration_secs)),
        (_, StepState::Skipped) => "skipped".into(),
        (_, StepState::Superseded) => "⤳ superseded".into(),
        (_, StepState::Waiting) => "⏸ waiting".into(),
    }
}

/// The full story of a step, for its tooltip.
fn tooltip(t: &TrainReport, s: &StepReport) -> String {
    let mut lines = vec![s.name.clone()];
    let kind = match s.kind {
        StepKind::Job => "job",
        StepKind::Virtual => "virtual step",
        StepKind::Manual => "manual gate",
        StepKind::Target => "target",
    };
    let mut head = format!("{} · {kind}", s.state.as_str());
    if s.attempt > 0 {
        w!(head, " · attempt {}", s.attempt);
        if s.attempts.len() > 1 {
            w!(head, " of {}", s.attempts.len());
        }
        if let Some(k) = s
            .attempts
            .iter()
            .find(|a| a.attempt == s.attempt)
            .and_then(|a| a.rerun)
        {
            w!(head, " · re-run {k}");
        }
    }
    lines.push(head);
    if let Some(r) = &s.reason {
        lines.push(format!("reason: {r}"));
    }
    if let Some(by) = &s.unblocked_by {
        lines.push(format!("unblocked by {by}"));
    }
    if let Some(st) = &s.started_at {
        lines.push(format!("started {}", show_time(st)));
    }
    if let Some(d) = s.duration_secs {
        lines.push(format!("took {}", duration(d)));
    }
    if let Some(info) = display_info(s) {
        lines.push(format!("info: {}", ellipsize(&info, 300)));
    }
    if let Some(u) = &s.job_url {
        lines.push(format!("job: {u}"));
    }
    if !s.needs.is_empty() {
        lines.push(format!("needs: {}", s.needs.join(", ")));
    }
    if s.kind == StepKind::Manual && s.state == StepState::Blocked && ready(t, s) {
        lines.push(format!(
            "unblock: konductor unblock --train {} --step {} --reason \"…\"",
            t.train, s.name
        ));
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------
// Small helpers.

/// HTML-escapes its string when displayed (text and double- or single-quoted attributes).
struct E<'a>(&'a str);

impl fmt::Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut last = 0;
        for (i, c) in s.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                '\0' => "\u{FFFD}",
                _ => continue,
            };
            f.write_str(&s[last..i])?;
            f.write_str(rep)?;
            last = i + c.len_utf8();
        }
        f.write_str(&s[last..])
    }
}

/// The URL if it may become a link: `http://` or `https://`, nothing odd inside.
fn safe_url(u: &str) -> Option<&str> {
    let u = u.trim();
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && u.len() > lower.find("//").map_or(0, |p| p + 2)
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(u)
}

/// `Name <email>` shown as `Name`, the whole in a tooltip.
fn person(who: &str) -> String {
    match who.split_once(" <") {
        Some((name, _)) if !name.trim().is_empty() => {
            format!("<span title=\"{}\">{}</span>", E(who), E(name.trim()))
        }
        _ => E(who).to_string(),
    }
}

fn badge(state: &str) -> String {
    format!("<span class=\"badge b-{state}\">{state}</span>")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn short_sha(sha: &str) -> &str {
    match sha.char_indices().nth(10) {
        Some((i, _)) => &sha[..i],
        None => sha,
    }
}

/// `2026-11-22T14:18:35Z` → `2026-11-22 14:18:35`.
fn show_time(rfc: &str) -> String {
    if parse_rfc3339(rfc).is_some() {
        rfc.replacen('T', " ", 1).trim_end_matches('Z').to_string()
    } else {
        rfc.to_string()
    }
}

/// A `<time>` element with its age relative to `now`.
fn when(rfc: &str, now: i64) -> String {
    match parse_rfc3339(rfc) {
        Some(at) => format!(
            "<time datetime=\"{}\">{}</time> <span class=\"ago\">({} ago)</span>",
            E(rfc),
            E(&show_time(rfc)),
            age(now.saturating_sub(at))
        ),
        None => E(rfc).to_string(),
    }
}

/// A compact timestamp for tables.
fn stamp(rfc: &str) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        E(rfc),
        E(&show_time(rfc))
    )
}

/// `45s`, `4m 12s`, `1h 03m`, `2d 03h`.
fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// At most `max` characters, ending in `…` when cut.
fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Round a coordinate for output.
fn r(v: f64) -> i64 {
    v.round() as i64
}

/// The page's Content-Security-Policy: nothing may load; only this page's own style and
/// script run (by hash, so injected markup could not run script even if escaping failed).
fn csp() -> String {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; img-src 'none'; \
         font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'",
        base64(&sha256(STYLE.as_bytes())),
        base64(&sha256(SCRIPT.as_bytes()))
    )
}

/// SHA-256 (FIPS 180-4), for the CSP hashes.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, b) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(*wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

const STYLE: &str = r#"
:root{--fg:#1f2937;--muted:#64748b;--line:#e2e8f0;--bg:#f6f7f9;--link:#1d4ed8}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"DejaVu Sans",sans-serif}
a{color:var(--link);text-decoration:none}
a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono","Liberation Mono",monospace;font-size:12.5px}
.muted,.ago,.sub{color:var(--muted)}
.sub{font-size:12.5px}
header.top{background:#fff;border-bottom:1px solid var(--line);padding:12px 24px;display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 28px}
header.top h1{font-size:20px;margin:0;letter-spacing:-.01em}
header.top .meta{display:flex;flex-wrap:wrap;gap:4px 20px;color:#334155}
#age.stale{color:#b91c1c;font-weight:600}
main{padding:14px 24px 32px}
h2{font-size:16px;margin:22px 0 8px}
.count{display:inline-block;min-width:22px;padding:0 7px;border-radius:999px;background:#e2e8f0;color:#334155;font-size:12px;text-align:center;vertical-align:2px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:12px}
.card{background:#fff;border:1px solid var(--line);border-top:4px solid #94a3b8;border-radius:10px;padding:10px 16px 12px}
.card.prod{border-top-color:#16a34a}
.card.staging{border-top-color:#2563eb}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);font-weight:700}
.card .big{font-size:26px;font-weight:700;margin:2px 0}
.card .big .badge{vertical-align:6px}
.card .big.none{color:#94a3b8}
.counts{display:flex;flex-wrap:wrap;gap:6px 14px;margin:8px 0 6px}
.counts b{font-size:18px}
.cnt.zero{opacity:.45}
.badge{display:inline-block;padding:0 8px;border-radius:999px;font-size:12px;font-weight:600;border:1px solid;line-height:18px;white-space:nowrap}
.b-running,.b-started,.b-triggered{background:#dbeafe;color:#1e40af;border-color:#93c5fd}
.b-succeeded,.b-success{background:#dcfce7;color:#166534;border-color:#86efac}
.b-failed,.b-failure{background:#fee2e2;color:#991b1b;border-color:#fca5a5}
.b-blocked{background:#fef3c7;color:#92400e;border-color:#fcd34d}
.b-cancelled,.b-pending{background:#f1f5f9;color:#475569;border-color:#cbd5e1}
.b-skipped{background:#f8fafc;color:#64748b;border-color:#cbd5e1;border-style:dashed}
.chip{display:inline-block;padding:0 7px;border-radius:6px;font-size:12px;border:1px solid;margin:1px 0;white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.waiting{background:#fffbeb;border:1px solid #fcd34d;border-left:5px solid #f59e0b;border-radius:10px;padding:2px 16px 10px;margin-top:16px}
.waiting.none{background:#fff;border-color:var(--line);border-left-color:#cbd5e1}
.waiting h2{margin:10px 0 6px}
.waiting ul{margin:0;padding-left:18px}
.waiting li{margin:6px 0}
.cmd{margin-top:2px}
.cmd code{background:#fff;border:1px solid #fde68a;border-radius:5px;padding:1px 6px;user-select:all}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:#f8fafc;white-space:nowrap}
table.list{border:1px solid var(--line);border-radius:10px}
table.list tbody tr:hover{background:#f8fafc}
.tn a{font-weight:700;font-size:15px}
.prog{white-space:nowrap}
.prog span{font-variant-numeric:tabular-nums;margin-left:4px}
.pbar{vertical-align:-1px}
.pb-bg{fill:#e2e8f0}.pb-success{fill:#22c55e}.pb-started{fill:#3b82f6}.pb-failure{fill:#ef4444}.pb-blocked{fill:#f59e0b}
.place{font-weight:600}.place.prod{color:#15803d}.place.staging{color:#1d4ed8}
.warncount{color:#b45309;font-weight:700}
.bar-row{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:8px;margin-bottom:8px}
.legend{display:flex;flex-wrap:wrap;align-items:center;gap:4px 14px;font-size:12.5px;color:#334155}
.legend span{display:inline-flex;align-items:center;gap:5px}
.legend .sep{width:1px;height:16px;background:#cbd5e1}
.tools button{font:inherit;font-size:12.5px;background:#fff;border:1px solid #cbd5e1;border-radius:6px;padding:3px 10px;cursor:pointer;margin-left:6px}
.tools button:hover{background:#f1f5f9}
section.train{background:#fff;border:1px solid var(--line);border-left:5px solid #94a3b8;border-radius:10px;margin:10px 0;scroll-margin-top:10px}
section.train[data-state=running]{border-left-color:#3b82f6}
section.train[data-state=succeeded]{border-left-color:#22c55e}
section.train[data-state=failed]{border-left-color:#ef4444}
section.train[data-state=blocked]{border-left-color:#f59e0b}
section.train:target{box-shadow:0 0 0 3px #bfdbfe}
summary{cursor:pointer;padding:9px 14px;line-height:1.7}
summary:hover{background:#f8fafc}
.tname{font-weight:700;font-size:15px;margin-right:4px}
.sum{color:#475569;font-size:13px;margin-left:6px}
.warnchip{color:#b45309;font-weight:600;font-size:13px;margin-left:8px}
.body{padding:0 14px 14px}
.note{background:#f1f5f9;border:1px solid #cbd5e1;border-radius:8px;padding:6px 12px;margin:4px 0 10px}
.warn{background:#fff7ed;border:1px solid #fdba74;border-left:5px solid #f97316;border-radius:8px;padding:6px 12px;margin:4px 0 10px;color:#7c2d12}
.warn ul{margin:4px 0 0;padding-left:18px;font-size:13px;word-break:break-word}
.graph{overflow-x:auto;border:1px solid var(--line);border-radius:8px;background:#fbfcfd;margin:4px 0 10px}
svg.dag{display:block}
svg.dag.fit{max-width:100%;height:auto}
.box{fill:#f1f5f9;stroke:#94a3b8;stroke-width:1.5}
.s-triggered .box{fill:#eff6ff;stroke:#60a5fa}
.s-started .box{fill:#dbeafe;stroke:#2563eb;stroke-width:2.5}
.s-success .box{fill:#dcfce7;stroke:#16a34a}
.s-failure .box{fill:#fee2e2;stroke:#dc2626;stroke-width:2.5}
.s-blocked .box{fill:#fef3c7;stroke:#d97706;stroke-width:2}
.s-skipped .box{fill:#f8fafc;stroke:#cbd5e1;stroke-dasharray:5 3}
.k-virtual .box,.k-target .box{stroke-dasharray:6 3}
.k-target .box{stroke-width:2.5}
.k-manual .box{stroke-width:2.5}
.n .nm{font:600 12px ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono","Liberation Mono",monospace;fill:#0f172a}
.n .st{font-size:11px;fill:#334155}
.n .att{font-size:10px;font-weight:700;fill:#991b1b}
.s-skipped .nm,.s-skipped .st,.s-pending .st{fill:#64748b}
.s-failure .st{fill:#991b1b}.s-blocked .st{fill:#92400e}.s-started .st{fill:#1e40af}.s-success .st{fill:#166534}
.n a:hover .box{stroke-width:3.5}
.n a:hover .nm{text-decoration:underline}
.e{fill:none;stroke:#b4c0cf;stroke-width:1.5}
.e.d{stroke:#64748b}
.a{fill:#b4c0cf}.a.d{fill:#64748b}
.cap{color:var(--muted);font-size:12px;text-align:right;margin:-6px 2px 8px}
.op{white-space:nowrap}
table.steps td,table.steps th{font-size:12.5px;padding:3px 10px;line-height:1.35}
table.steps .badge{line-height:16px}
table.steps td.det{max-width:520px;word-break:break-word}
.kind{font-size:11px;color:#6d28d9;background:#f5f3ff;border:1px solid #ddd6fe;border-radius:4px;padding:0 4px;white-space:nowrap}
.info{color:var(--muted);font-size:12px}
.badurl{color:#9a3412;font-size:12px;word-break:break-all}
footer{color:var(--muted);font-size:12px;padding:6px 24px 24px}
@media print{.tools{display:none}}
"#;

const SCRIPT: &str = r#"
(function () {
  "use strict";
  function openTarget() {
    var id;
    try { id = decodeURIComponent(location.hash.slice(1)); } catch (e) { return; }
    var el = id && document.getElementById(id);
    var d = el && el.querySelector("details");
    if (d) { d.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  var tools = document.getElementById("tools");
  if (tools) {
    tools.hidden = false;
    tools.addEventListener("click", function (ev) {
      var act = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-act");
      if (!act) { return; }
      document.querySelectorAll("section.train > details").forEach(function (d) {
        d.open = act === "open";
      });
    });
  }
  var t = document.querySelector("time[data-epoch]");
  var out = document.getElementById("age");
  if (t && out) {
    var s = Math.floor(Date.now() / 1000) - Number(t.getAttribute("data-epoch"));
    var txt = s < 90 ? "just now" : s < 5400 ? Math.round(s / 60) + " min ago" :
      s < 172800 ? Math.round(s / 3600) + " h ago" : Math.round(s / 86400) + " days ago";
    out.textContent = "(" + txt + ")";
    if (s > 3600) { out.className = "stale"; out.title = "this snapshot is old"; }
  }
})();
"#;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ops::Planned;
    use crate::plan::{plan, PlanContext};
    use crate::report::AttemptReport;
    use crate::sdd::Sdd;
    use crate::tag::TrainId;
    use crate::train::{Observed, TagRecord};

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
        for (k, s) in LEAVES.iter().enumerate() {
            t.job(s, 1, NOW - h + 30, Some(("success", 120 + 40 * k as i64)));
        }
        t.job(
            "deploy_serving_staging_k8s",
            1,
            NOW - h + 400,
            Some(("success", 260)),
        );
        t.job(
            "verify_serving_staging",
            1,
            NOW - h + 700,
            Some(("failure", 300)),
        );
        t.job("verify_serving_staging", 2, NOW - 900, None);
        out.push(t.report(true));

        let mut t = Tags::new(44, 0, NOW - 5 * h);
        for s in LEAVES {
            t.job(s, 1, NOW - 5 * h + 30, Some(("success", 200)));
        }
        t.job(
            "deploy_serving_staging_k8s",
            1,
            NOW - 5 * h + 300,
            Some(("success", 240)),
        );
        t.job(
            "verify_serving_staging",
            1,
            NOW - 5 * h + 600,
            Some(("success", 500)),
        );
        out.push(t.report(true));

        let mut t = Tags::new(43, 0, NOW - 26 * h);
        for s in LEAVES {
            t.job(s, 1, NOW - 26 * h + 30, Some(("success", 180)));
        }
        t.job(
            "deploy_serving_staging_k8s",
            1,
            NOW - 26 * h + 300,
            Some(("success", 200)),
        );
        t.job(
            "verify_serving_staging",
            1,
            NOW - 26 * h + 600,
            Some(("success", 400)),
        );
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
        for s in LEAVES {
            t.job(s, 1, NOW - 50 * h + 30, Some(("success", 150)));
        }
        t.job(
            "deploy_serving_staging_k8s",
            1,
            NOW - 50 * h + 300,
            Some(("success", 200)),
        );
        t.job(
            "verify_serving_staging",
            1,
            NOW - 50 * h + 600,
            Some(("success", 400)),
        );
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
    fn sha256_and_base64_match_known_vectors() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(sha256(&[b'a'; 1000])),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn page_is_self_contained_and_locked_down_by_csp() {
        let html = render_board(&realistic(), NOW, "https://git.example.com/acme/app.git");
        assert!(html.starts_with("<!DOCTYPE html>"));
        let csp = format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}';",
            base64(&sha256(STYLE.as_bytes())),
            base64(&sha256(SCRIPT.as_bytes()))
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
        assert!(waiting.contains("konductor unblock --train 44.0 --step require-manual-unblock-before-prod-deploy --reason"));
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
        assert!(
            html.contains("href=\"https://ci.example.com/pipelines/45/verify_serving_staging/2\"")
        );
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
}
