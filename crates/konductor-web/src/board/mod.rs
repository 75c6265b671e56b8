//! The board: one self-contained HTML page of every train, its step graph, the gates
//! waiting for someone, and what runs in staging and production.
//!
//! [`render_board`] turns train reports into the page: inline CSS, a few lines of inline
//! JavaScript (the page reads fine without it), no external loads of any kind, enforced
//! by a Content-Security-Policy that admits only the page's own style and script by hash.
//! The markup is written with maud's `html!`, which is checked at compile time and
//! escapes every splice; strings from tags (step names, info strings reported by CI jobs,
//! URLs, people) go through [`E`](text::E), which escapes `'` too. Job URLs become links
//! only when they are `http(s)://`.
//!
//! Each train's step graph is drawn as an inline SVG ([`layout`] places it). Step nodes
//! and train sections carry `data-*` attributes so browser tests can check the page:
//! `<g data-train="N.P" data-step="name" data-state="success">` for every step and
//! `<section id="train-N.P" data-state="running">` for every train.
//!
//! The output depends only on the arguments: same input, same bytes.

mod changes;
mod csp;
mod graph;
mod layout;
pub(crate) mod live;
#[cfg(test)]
mod tests;
mod text;

use konductor_core::ops::env_control::EnvView;
use konductor_core::plan::{StepKind, StepState, TrainState};
use konductor_core::report::{unblock_command, Placement, StepReport, TrainReport};
use konductor_core::time::{age, parse_rfc3339, rfc3339};
use maud::{html, Markup, PreEscaped, DOCTYPE};

pub use changes::BoardChanges;
use csp::{csp, SCRIPT, STYLE};
use graph::graph_svg;
use text::{duration, ellipsize, plural, safe_url, short_sha, show_time, E};

/// Render the whole board as one self-contained HTML document.
///
/// `trains` is newest first (the order is kept). `generated_at` (seconds since the epoch)
/// is the only clock the page uses: ages and running times are relative to it, so the
/// same input renders the same bytes. `remote` must already be free of credentials; it
/// is escaped like everything else.
pub fn render_board(trains: &[TrainReport], generated_at: i64, remote: &str) -> String {
    render_board_with(trains, &[], &BoardChanges::default(), generated_at, remote)
}

/// [`render_board`] with the environments as `konductor env` sees them
/// (`ops::env_control::env_view`) and the change lists of [`BoardChanges`]. The
/// environment cards come from `envs`, one per environment, with the train there, the one
/// deploying, those waiting, a freeze or a pin with its reason (without environments, the
/// cards show where trains got to, `Placement`); the collapsed "Changes" section says what
/// each train brings and what waits to reach production.
pub fn render_board_with(
    trains: &[TrainReport],
    envs: &[EnvView],
    changes: &BoardChanges,
    generated_at: i64,
    remote: &str,
) -> String {
    let generated = rfc3339(generated_at);
    let page = html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            head {
                "\n"
                meta charset="utf-8"; "\n"
                meta http-equiv="Content-Security-Policy" content=(csp()); "\n"
                meta name="referrer" content="no-referrer"; "\n"
                meta name="viewport" content="width=device-width, initial-scale=1"; "\n"
                meta name="generator" content="konductor"; "\n"
                title { "Konductor board · " (E(remote)) } "\n"
                // Trusted constants, hashed into the CSP above.
                style { (PreEscaped(STYLE)) } "\n"
            }
            "\n"
            body {
                "\n"
                header class="top" {
                    h1 { "Konductor board" }
                    div class="meta" {
                        span { "remote " code { (E(remote)) } }
                        span {
                            "generated "
                            time datetime=(E(&generated)) data-epoch=(generated_at) {
                                (E(&show_time(&generated)))
                            }
                            " " span id="age" {}
                        }
                        span { (trains.len()) " train" (plural(trains.len())) }
                        span class="muted" { "all times UTC" }
                    }
                }
                "\n"
                main {
                    "\n"
                    (sections(trains, envs, changes, generated_at))
                }
                "\n"
                footer {
                    "Rendered by " code { "konductor board" } " from the tags on "
                    code { (E(remote)) } " at " (E(&generated))
                    ". Git tags are the only state; this page is a snapshot."
                }
                "\n"
                script { (PreEscaped(SCRIPT)) } "\n"
            }
            "\n"
        }
        "\n"
    };
    page.into_string()
}

// ---------------------------------------------------------------------------------------
// Page sections.

/// The page's sections below its header: environments and counts, waiting gates, the
/// train list, the step graphs. The live page of `konductor serve` swaps these.
pub(crate) fn sections(
    trains: &[TrainReport],
    envs: &[EnvView],
    changes: &BoardChanges,
    generated_at: i64,
) -> Markup {
    let waiting = waiting_gates(trains);
    html! {
        (cards(trains, envs, waiting.len(), generated_at))
        (waiting_section(&waiting, generated_at))
        (train_list(trains, generated_at))
        (changes::section(changes))
        section id="graphs" {
            "\n" h2 { "Step graphs" } "\n"
            div class="bar-row" {
                (legend())
                div id="tools" class="tools" hidden {
                    button type="button" data-act="open" { "Expand all" }
                    button type="button" data-act="close" { "Collapse all" }
                }
            }
            "\n"
            @if trains.is_empty() {
                p class="muted" { "No trains yet." } "\n"
            }
            @for (i, t) in trains.iter().enumerate() {
                (train_section(t, i < 3 || t.state == TrainState::Running, generated_at))
            }
        }
        "\n"
    }
}

/// The environment cards and the count of trains by state.
fn cards(trains: &[TrainReport], envs: &[EnvView], waiting: usize, now: i64) -> Markup {
    let prod = trains.iter().find(|t| t.placement == Placement::Production);
    let staging = trains
        .iter()
        .find(|t| matches!(t.placement, Placement::Staging | Placement::Production));
    let states = [
        TrainState::Running,
        TrainState::Blocked,
        TrainState::Failed,
        TrainState::Succeeded,
        TrainState::Cancelled,
    ];
    html! {
        section class="cards" id="environments" {
            "\n"
            @if envs.is_empty() {
                (env_card("prod", "Production", prod, now))
                (env_card("staging", "Staging", staging, now))
            } @else {
                // Production first, as the placement cards are.
                @for v in envs.iter().rev() {
                    (env_view_card(v, trains, now))
                }
            }
            article class="card summary" {
                div class="label" { "Trains" }
                div class="counts" {
                    @for st in states {
                        @let n = trains.iter().filter(|t| t.state == st).count();
                        span class={ "cnt" @if n == 0 { " zero" } } {
                            b { (n) } " " (badge(st.as_str()))
                        }
                    }
                }
                div class="sub" {
                    @if waiting == 0 {
                        "nobody is needed right now"
                    } @else {
                        a href="#waiting" { (waiting) " manual gate" (plural(waiting)) " waiting" }
                    }
                }
            }
            "\n"
        }
        "\n"
    }
}

/// The train that reached an environment last.
fn env_card(class: &str, label: &str, t: Option<&TrainReport>, now: i64) -> Markup {
    html! {
        article class={ "card env " (class) } id={ "env-" (class) } {
            div class="label" { (label) }
            @match t {
                Some(t) => {
                    div class="big" { (train_link(t)) " " (badge(t.state.as_str())) }
                    div {
                        "commit " code { (E(short_sha(&t.sha))) }
                        " · target " code { (E(&t.target)) }
                    }
                    div class="sub" { "opened " (when(&t.opened_at, now)) " by " (person(&t.opened_by)) }
                }
                None => {
                    div class="big none" { "—" }
                    div class="sub" { "No train has reached " (label.to_lowercase()) " yet." }
                }
            }
        }
        "\n"
    }
}

/// One environment's card, from the environments view.
fn env_view_card(v: &EnvView, trains: &[TrainReport], now: i64) -> Markup {
    let class = if v.environment.starts_with("prod") {
        "prod".to_string()
    } else {
        v.environment.clone()
    };
    let mut label = v.environment.clone();
    if let Some(first) = label.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let report = |n: &str| trains.iter().find(|t| t.train == n);
    html! {
        article class={ "card env " (E(&class)) } id={ "env-" (E(&class)) } {
            div class="label" { (E(&label)) }
            @match &v.current {
                Some(c) => {
                    div class="big" {
                        @match report(&c.train) {
                            Some(t) => { (train_link(t)) }
                            None => { (E(&c.train)) }
                        }
                        @if c.rollback { " " span class="badge b-frozen" { "rollback" } }
                    }
                    @if let Some(commit) = &c.commit {
                        div {
                            "deploy " code { (E(short_sha(commit))) }
                            @if let Some(tag) = &v.deploy_tag { " · " code { (E(tag)) } }
                        }
                    }
                    @if let Some(since) = &c.since {
                        div class="sub" {
                            "since " (when(since, now))
                            @if let Some(by) = &c.by { " by " (person(by)) }
                        }
                    }
                }
                None => {
                    div class="big none" { "—" }
                    div class="sub" { "Nothing deployed to " (E(&v.environment)) " yet." }
                }
            }
            @if let Some(d) = &v.deploying {
                div class="sub" { "deploying " (E(d)) }
            }
            @if !v.waiting.is_empty() {
                div class="sub" { "waiting: " (E(&v.waiting.join(", "))) }
            }
            @if let Some(p) = &v.pinned {
                div class="sub hold" { "📌 " (E(&p.reason)) }
            }
            @if let Some(f) = &v.frozen {
                div class="sub hold" { "❄ " (E(&f.reason)) }
            }
        }
        "\n"
    }
}

/// A manual gate someone has to unblock.
struct Waiting<'a> {
    train: &'a TrainReport,
    step: &'a StepReport,
    since: Option<i64>,
}

fn waiting_gates(trains: &[TrainReport]) -> Vec<Waiting<'_>> {
    trains
        .iter()
        .flat_map(|t| {
            t.waiting_gates().map(move |s| Waiting {
                train: t,
                step: s,
                since: ready_since(t, s),
            })
        })
        .collect()
}

/// Whether every dependency of `s` is done.
fn ready(t: &TrainReport, s: &StepReport) -> bool {
    t.is_ready(s)
}

/// A blocked step that waits for a failure upstream to be retried, not for a person: it
/// gets its own colour (`by-failure`), apart from a gate waiting for an unblock.
fn blocked_by_failure(t: &TrainReport, s: &StepReport) -> bool {
    s.state == StepState::Blocked && !t.is_waiting_gate(s)
}

/// A step's state badge; a step blocked by a failure is told apart from a waiting gate.
fn step_badge(t: &TrainReport, s: &StepReport) -> Markup {
    if blocked_by_failure(t, s) {
        html! { span class="badge b-blocked by-failure" title="blocked by a failure upstream" { "blocked" } }
    } else {
        badge(s.state.as_str())
    }
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

fn waiting_section(waiting: &[Waiting<'_>], now: i64) -> Markup {
    html! {
        section id="waiting" class={ "waiting" @if waiting.is_empty() { " none" } } {
            "\n"
            h2 { "Waiting for someone " span class="count" { (waiting.len()) } }
            "\n"
            @if waiting.is_empty() {
                p class="muted" { "No manual gate is waiting for an unblock." } "\n"
            } @else {
                ul {
                    "\n"
                    @for wt in waiting {
                        li {
                            div {
                                (train_link_text(wt.train, "train ")) " · gate " code { (E(&wt.step.name)) }
                                @if let Some(at) = wt.since {
                                    " · ready since " (E(&show_time(&rfc3339(at))))
                                    " (" (age(now.saturating_sub(at))) " ago)"
                                }
                                @if let Some(r) = &wt.step.reason {
                                    " · " span class="muted" { (E(r)) }
                                }
                            }
                            div class="cmd" {
                                "to unblock: " code { (E(&unblock_command(&wt.train.train, &wt.step.name))) }
                            }
                        }
                        "\n"
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn train_list(trains: &[TrainReport], now: i64) -> Markup {
    let heads = [
        "Train", "State", "Where", "Now", "Commit", "Opened", "Progress", "Warnings",
    ];
    html! {
        section id="trains" {
            "\n"
            h2 { "Trains " span class="count" { (trains.len()) } }
            "\n"
            @if trains.is_empty() {
                p class="muted" { "No trains yet: open one with " code { "konductor start" } "." } "\n"
            } @else {
                div class="scroll" {
                    table class="list" {
                        thead { tr { @for h in heads { th { (h) } } } }
                        "\n"
                        tbody {
                            "\n"
                            @for t in trains {
                                (train_row(t, now))
                            }
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn train_row(t: &TrainReport, now: i64) -> Markup {
    let (done, total) = progress(t);
    html! {
        tr {
            td class="tn" { (train_link(t)) }
            td { (badge(t.state.as_str())) }
            td {
                @match t.placement {
                    Placement::Production => { span class="place prod" { "production" } }
                    Placement::Staging => { span class="place staging" { "staging" } }
                    Placement::None => { span class="muted" { "—" } }
                }
            }
            td { (now_summary(t)) }
            td { code { (E(short_sha(&t.sha))) } }
            td class="op" { (when(&t.opened_at, now)) " · " (person(&t.opened_by)) }
            td class="prog" { (progress_bar(t)) " " span { (done) "/" (total) } }
            td {
                @if t.warnings.is_empty() {
                    span class="muted" { "0" }
                } @else {
                    a class="warncount" href={ "#train-" (E(&t.train)) } { "⚠ " (t.warnings.len()) }
                }
            }
        }
        "\n"
    }
}

/// ` by X: reason` of a cancelled train.
fn cancel_detail(t: &TrainReport) -> Markup {
    html! {
        @if let Some(b) = &t.cancelled_by { " by " (E(b)) }
        @if let Some(r) = &t.cancel_reason { ": " (E(r)) }
    }
}

/// What a train is doing right now, as a few chips.
fn now_summary(t: &TrainReport) -> Markup {
    if t.state == TrainState::Cancelled {
        return html! { span class="muted" { "cancelled" (cancel_detail(t)) } };
    }
    if t.state == TrainState::Succeeded {
        return html! { span class="muted" { "done" } };
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
    html! {
        @if chips.is_empty() {
            span class="muted" { "—" }
        }
        @for (state, sym, name) in chips.iter().take(3) {
            span class={ "chip b-" (state) } title={ (E(state)) ": " (E(name)) } {
                (sym) " " (E(name))
            }
            " "
        }
        @if chips.len() > 3 {
            span class="muted" { "+" (chips.len() - 3) " more" }
        }
    }
}

fn progress(t: &TrainReport) -> (usize, usize) {
    (
        t.steps.iter().filter(|s| s.state.is_done()).count(),
        t.steps.len(),
    )
}

/// A small stacked bar: done, running, failed, blocked; the rest is pending.
fn progress_bar(t: &TrainReport) -> Markup {
    let total = t.steps.len().max(1) as f64;
    let count = |f: &dyn Fn(StepState) -> bool| t.steps.iter().filter(|s| f(s.state)).count();
    let parts = [
        ("success", count(&|s| s.is_done())),
        (
            "started",
            count(&|s| matches!(s, StepState::Started | StepState::Triggered)),
        ),
        ("failure", count(&|s| s == StepState::Failure)),
        (
            "blocked",
            t.steps.iter().filter(|s| t.is_waiting_gate(s)).count(),
        ),
        (
            "by-failure",
            t.steps.iter().filter(|s| blocked_by_failure(t, s)).count(),
        ),
    ];
    let mut x = 0.0;
    let bars: Vec<(&str, f64, f64)> = parts
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(class, n)| {
            let wdt = 100.0 * n as f64 / total;
            let at = x;
            x += wdt;
            (class, at, wdt)
        })
        .collect();
    html! {
        svg class="pbar" viewBox="0 0 100 8" width="100" height="8" aria-hidden="true" {
            rect class="pb-bg" width="100" height="8" rx="4" {}
            @for (class, at, wdt) in bars {
                rect class={ "pb-" (class) } x=(format!("{at:.1}")) width=(format!("{wdt:.1}")) height="8" {}
            }
        }
    }
}

/// One swatch of the legend: a small node shape of the given classes.
fn swatch(classes: &str, shape: Markup, label: &str) -> Markup {
    html! {
        span {
            svg class="sw" viewBox="0 0 30 18" width="30" height="18" aria-hidden="true" {
                g class=(classes) { (shape) }
            }
            (label)
        }
    }
}

fn legend() -> Markup {
    let states = [
        StepState::Pending,
        StepState::Triggered,
        StepState::Started,
        StepState::Success,
        StepState::Failure,
        StepState::Blocked,
        StepState::Skipped,
        StepState::Waiting,
        StepState::Frozen,
        StepState::Superseded,
    ];
    let rect =
        |rx: &str| html! { rect class="box" x="1.5" y="1.5" width="27" height="15" rx=(rx) {} };
    html! {
        div class="legend" aria-label="legend" {
            @for st in states {
                @if st == StepState::Blocked {
                    (swatch("s-blocked k-job", rect("4"), "blocked: waiting for a person"))
                    (swatch("s-blocked by-failure k-job", rect("4"), "blocked by a failure"))
                } @else {
                    (swatch(&format!("s-{} k-job", st.as_str()), rect("4"), st.as_str()))
                }
            }
            span class="sep" {}
            (swatch("s-pending k-manual",
                html! { polygon class="box" points="1.5,9 7,1.5 23,1.5 28.5,9 23,16.5 7,16.5" {} },
                "manual gate"))
            (swatch("s-pending k-virtual", rect("7"), "virtual step / target"))
            span class="muted" { "hover a step for details; click it to open its CI job" }
        }
    }
}

fn train_section(t: &TrainReport, open: bool, now: i64) -> Markup {
    let (done, total) = progress(t);
    let n = t.warnings.len();
    html! {
        section class="train" id={ "train-" (E(&t.train)) } data-train=(E(&t.train))
            data-state=(t.state.as_str()) {
            "\n"
            details open[open] {
                "\n"
                summary {
                    span class="tname" { "Train " (E(&t.train)) } " " (badge(t.state.as_str())) " "
                    span class="sum" {
                        (done) "/" (total) " steps done · target " code { (E(&t.target)) }
                        " · commit " code { (E(short_sha(&t.sha))) }
                        " · opened " (when(&t.opened_at, now)) " by " (person(&t.opened_by))
                    }
                    @if n > 0 {
                        " " span class="warnchip" { "⚠ " (n) " warning" (plural(n)) }
                    }
                }
                "\n"
                div class="body" {
                    "\n"
                    @if t.state == TrainState::Cancelled {
                        div class="note" { "Cancelled" (cancel_detail(t)) "." } "\n"
                    }
                    @if n > 0 {
                        div class="warn" role="note" {
                            b { "⚠ " (n) " tag" (plural(n)) " ignored or distrusted on this train" }
                            ul { @for wn in &t.warnings { li { (E(wn)) } } }
                        }
                        "\n"
                    }
                    (graph_svg(t, now))
                    (steps_table(t, now))
                }
                "\n"
            }
            "\n"
        }
        "\n"
    }
}

fn steps_table(t: &TrainReport, now: i64) -> Markup {
    let heads = [
        "Step", "State", "Attempt", "Started", "Duration", "Job", "Details",
    ];
    html! {
        div class="scroll" {
            table class="steps" {
                thead { tr { @for h in heads { th { (h) } } } }
                tbody {
                    "\n"
                    @for s in &t.steps {
                        tr class={ "r-" (s.state.as_str()) } {
                            td {
                                code { (E(&s.name)) }
                                @match s.kind {
                                    StepKind::Job => {}
                                    StepKind::Virtual => { " " span class="kind" { "virtual" } }
                                    StepKind::Manual => { " " span class="kind" { "manual gate" } }
                                    StepKind::Target => { " " span class="kind" { "target" } }
                                }
                            }
                            td { (step_badge(t, s)) }
                            td { (attempt_cell(s)) }
                            td {
                                @match (&s.started_at, &s.triggered_at) {
                                    (Some(st), _) => { (stamp(st)) }
                                    (None, Some(tr)) => { span class="muted" { "triggered" } " " (stamp(tr)) }
                                    _ => {}
                                }
                            }
                            td {
                                @match (s.duration_secs, s.started_at.as_deref().and_then(parse_rfc3339)) {
                                    (Some(d), _) => { (duration(d)) }
                                    (None, Some(at)) if s.state == StepState::Started => {
                                        span class="muted" { "running" } " " (duration(now.saturating_sub(at)))
                                    }
                                    _ => {}
                                }
                            }
                            td {
                                @if let Some(u) = s.job_url.as_deref() {
                                    @match safe_url(u) {
                                        Some(u) => { (job_link(u, html! { "job ↗" })) }
                                        None => {
                                            span class="badurl" title="not an http(s) URL: not linked" { (E(&ellipsize(u, 40))) }
                                        }
                                    }
                                }
                            }
                            td class="det" {
                                @if let Some(r) = &s.reason { div { (E(r)) } }
                                @if let Some(by) = &s.unblocked_by {
                                    div {
                                        "unblocked by " (E(by))
                                        @if let Some(a) = &s.unblocked_at { " at " (E(&show_time(a))) }
                                    }
                                }
                                @if let Some(info) = display_info(s) {
                                    div class="info" title=(E(&info)) { (E(&ellipsize(&info, 160))) }
                                }
                            }
                        }
                        "\n"
                    }
                }
            }
        }
        "\n"
    }
}

/// The attempt number, its re-run, how many attempts, and their history in a tooltip.
fn attempt_cell(s: &StepReport) -> Markup {
    if s.attempt == 0 {
        return html! { span class="muted" { "—" } };
    }
    let history = s
        .attempts
        .iter()
        .map(|a| match a.rerun {
            Some(k) => format!("#{}: {} (re-run {k})", a.attempt, a.state),
            None => format!("#{}: {}", a.attempt, a.state),
        })
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        span title=(E(&history)) {
            "#" (s.attempt)
            @if let Some(k) = current_rerun(s) { " " span class="muted" { "re-run " (k) } }
            @if s.attempts.len() > 1 { " " span class="muted" { "of " (s.attempts.len()) } }
        }
    }
}

/// The CI re-run number of the step's current attempt, if it was re-run.
fn current_rerun(s: &StepReport) -> Option<u32> {
    s.attempts
        .iter()
        .find(|a| a.attempt == s.attempt)
        .and_then(|a| a.rerun)
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

// ---------------------------------------------------------------------------------------
// Small pieces.

/// A link to a CI job (a URL [`safe_url`] let through), opened in a new tab.
fn job_link(url: &str, content: Markup) -> Markup {
    html! { a href=(E(url)) target="_blank" rel="noopener noreferrer" { (content) } }
}

/// A link to a train's section, showing its number after `prefix`.
fn train_link_text(t: &TrainReport, prefix: &str) -> Markup {
    html! { a href={ "#train-" (E(&t.train)) } { (prefix) (E(&t.train)) } }
}

/// A link to a train's section, showing its number.
fn train_link(t: &TrainReport) -> Markup {
    train_link_text(t, "")
}

/// `Name <email>` shown as `Name`, the whole in a tooltip.
fn person(who: &str) -> Markup {
    html! {
        @match who.split_once(" <") {
            Some((name, _)) if !name.trim().is_empty() => {
                span title=(E(who)) { (E(name.trim())) }
            }
            _ => { (E(who)) }
        }
    }
}

fn badge(state: &str) -> Markup {
    html! { span class={ "badge b-" (state) } { (state) } }
}

/// A `<time>` element with its age relative to `now`.
fn when(rfc: &str, now: i64) -> Markup {
    html! {
        @match parse_rfc3339(rfc) {
            Some(at) => {
                (stamp(rfc)) " " span class="ago" { "(" (age(now.saturating_sub(at))) " ago)" }
            }
            None => { (E(rfc)) }
        }
    }
}

/// A compact timestamp for tables.
fn stamp(rfc: &str) -> Markup {
    html! { time datetime=(E(rfc)) { (E(&show_time(rfc))) } }
}
