//! What is in each train and what waits to reach production: the board's "Changes"
//! section, from [`konductor_core::ops::diff`] reports. Every list is collapsed
//! (`<details>`); the page is the same without them.

use konductor_core::ops::diff::DiffReport;
use maud::{html, Markup};

use super::text::{plural, short_sha, E};

/// The change lists the board shows.
#[derive(Debug, Clone, Default)]
pub struct BoardChanges {
    /// Per train (newest first): what it brings over the train before it.
    pub trains: Vec<DiffReport>,
    /// Per environment other than production: what it runs that production does not.
    pub waiting: Vec<DiffReport>,
}

impl BoardChanges {
    fn is_empty(&self) -> bool {
        self.trains.is_empty() && self.waiting.is_empty()
    }
}

/// The section, or nothing when there are no change lists.
pub(super) fn section(c: &BoardChanges) -> Markup {
    if c.is_empty() {
        return html! {};
    }
    html! {
        section id="changes" {
            "\n" h2 { "Changes" } "\n"
            @for d in &c.waiting {
                div class="waiting-env" data-env=(E(d.to.environment.as_deref().unwrap_or(""))) {
                    (one(d, &format!(
                        "waiting to reach {}: {} from {}",
                        d.from.environment.as_deref().unwrap_or("production"),
                        d.to.environment.as_deref().unwrap_or(""),
                        d.to.train
                    )))
                }
                "\n"
            }
            @for d in &c.trains {
                div class="train-changes" data-train=(d.to.train.to_string()) {
                    (one(d, &format!("train {} over {}", d.to.train, d.from.train)))
                }
                "\n"
            }
        }
        "\n"
    }
}

fn one(d: &DiffReport, title: &str) -> Markup {
    let n = d.commits_total;
    let p = d.pull_requests_total;
    let f = d.files_total;
    html! {
        details {
            summary {
                b { (E(title)) } " · " (n) " commit" (plural(n)) " · " (p) " pull request" (plural(p))
                " · " (f) " file" (plural(f))
                @if d.relation.as_str() != "ahead" { " · " (d.relation.as_str()) }
            }
            @if !d.pull_requests.is_empty() {
                ul class="prs" {
                    @for pr in &d.pull_requests {
                        li {
                            @match &pr.project {
                                Some(proj) => { code { (E(proj)) "!" (pr.number) } }
                                None => { code { "#" (pr.number) } }
                            }
                            " " (E(&pr.title))
                        }
                    }
                }
            }
            ul class="commits" {
                @for c in &d.commits {
                    li { code { (E(short_sha(&c.sha))) } " " (E(&c.subject)) " · " (E(&c.author)) }
                }
                @if n > d.commits.len() { li class="muted" { "… " (n - d.commits.len()) " more" } }
            }
            @if !d.files.is_empty() {
                ul class="files" {
                    @for file in &d.files {
                        li {
                            (file.kind.as_str()) " " code { (E(&file.path)) }
                            @if !file.gates.is_empty() { " · triggers " (E(&file.gates.join(", "))) }
                        }
                    }
                    @if f > d.files.len() { li class="muted" { "… " (f - d.files.len()) " more" } }
                }
            }
        }
    }
}
