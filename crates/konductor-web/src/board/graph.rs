//! A train's step graph as an inline SVG, drawn from its [layout](super::layout).

use konductor_core::plan::{StepKind, StepState};
use konductor_core::report::{StepReport, TrainReport};
use konductor_core::time::parse_rfc3339;
use maud::{html, Markup};

use super::layout::{layout, NodeBox, ARROW, FIT_MAX, STATUS_CHAR_W};
use super::text::{duration, ellipsize, r, safe_url, show_time, E};
use super::{blocked_by_failure, current_rerun, display_info, job_link, ready, unblock_command};

/// The graph of one train, and under it a caption when it is too wide for the page.
pub(super) fn graph_svg(t: &TrainReport, now: i64) -> Markup {
    let lay = layout(&t.steps);
    let (wd, ht) = (r(lay.width), r(lay.height));
    let fit = lay.width <= FIT_MAX;
    html! {
        div class="graph" {
            svg class={ "dag" @if fit { " fit" } } xmlns="http://www.w3.org/2000/svg"
                viewBox={ "0 0 " (wd) " " (ht) } width=(wd) height=(ht) role="img"
                aria-label={ "step graph of train " (E(&t.train)) } data-layers=(lay.layers()) {
                "\n"
                g class="edges" {
                    @for e in &lay.edges {
                        @let done = t.steps[e.from].state.is_done();
                        path class=(if done { "e d" } else { "e" }) d=(e.path) {}
                        path class=(if done { "a d" } else { "a" })
                            d={ "M" (r(e.tip.0)) " " (r(e.tip.1)) "l-" (ARROW as i64) " -4v8z" } {}
                    }
                }
                "\n"
                @for (s, b) in t.steps.iter().zip(&lay.boxes) {
                    (node(t, s, b, now))
                }
            }
        }
        "\n"
        @if !fit {
            div class="cap" {
                (t.steps.len()) " steps in " (lay.layers())
                " layers: scroll the graph sideways to see it all →"
            }
            "\n"
        }
    }
}

/// One step: its shape, its name in at most two lines, its status line, a link to its
/// CI job, and the whole story in a tooltip.
fn node(t: &TrainReport, s: &StepReport, b: &NodeBox, now: i64) -> Markup {
    let kind = match s.kind {
        StepKind::Job => "job",
        StepKind::Virtual => "virtual",
        StepKind::Manual => "manual",
        StepKind::Target => "target",
    };
    let state = s.state.as_str();
    let (wd, ht) = (r(b.w), r(b.h));
    let pad = r(b.pad);
    let max = ((b.w - 2.0 * b.pad) / STATUS_CHAR_W).floor().max(4.0) as usize;
    let status_y = 19 + 15 * (b.lines.len() as i64 - 1) + 17;
    let inner = html! {
        @match s.kind {
            StepKind::Manual => {
                @let (c, m) = (12, r(b.h / 2.0));
                polygon class="box"
                    points={ "0," (m) " " (c) ",0 " (wd - c) ",0 " (wd) "," (m) " "
                             (wd - c) "," (ht) " " (c) "," (ht) } {}
            }
            StepKind::Virtual | StepKind::Target => {
                rect class="box" width=(wd) height=(ht) rx="14" {}
            }
            StepKind::Job => { rect class="box" width=(wd) height=(ht) rx="7" {} }
        }
        // An inner viewport clips text that outgrows the estimate.
        svg width=(wd) height=(ht) {
            @for (k, line) in b.lines.iter().enumerate() {
                text class="nm" x=(pad) y=(19 + 15 * k as i64) { (E(line)) }
            }
            text class="st" x=(pad) y=(status_y) { (E(&ellipsize(&status_line(t, s, now), max))) }
        }
        @if s.attempt > 1 && s.kind == StepKind::Job {
            text class="att" x=(wd - 6) y="13" text-anchor="end" { "#" (s.attempt) }
        }
    };
    html! {
        g class={ "n s-" (state) " k-" (kind) @if blocked_by_failure(t, s) { " by-failure" } } data-train=(E(&t.train)) data-step=(E(&s.name))
            data-state=(state) transform={ "translate(" (r(b.x)) " " (r(b.y)) ")" } {
            title { (E(&tooltip(t, s))) }
            @match s.job_url.as_deref().and_then(safe_url) {
                Some(u) => { (job_link(u, inner)) }
                None => { (inner) }
            }
        }
        "\n"
    }
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
        (_, StepState::Frozen) => match &s.until {
            Some(u) => format!("❄ frozen until {u}"),
            None => "❄ frozen".into(),
        },
    }
}

/// The full story of a step, for its tooltip (plain text, escaped where it is shown).
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
        head += &format!(" · attempt {}", s.attempt);
        if s.attempts.len() > 1 {
            head += &format!(" of {}", s.attempts.len());
        }
        if let Some(k) = current_rerun(s) {
            head += &format!(" · re-run {k}");
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
        lines.push(format!("unblock: {}", unblock_command(&t.train, &s.name)));
    }
    lines.join("\n")
}
