//! The live board of `konductor serve`: the same sections as the static page, one block
//! per repository, inside `<div id="live">`, which the page's live script replaces with
//! what the server sends on `GET /events`. Without JavaScript the page is complete.

use konductor_core::report::TrainReport;
use konductor_core::time::rfc3339;
use maud::{html, PreEscaped, DOCTYPE};

use super::csp::{hash, SCRIPT, STYLE};
use super::text::{show_time, E};

/// The live script, inlined verbatim (its hash is in the live page's CSP).
const LIVE_SCRIPT: &str = include_str!("live.js");

/// One repository's trains, as one block of the live board.
#[derive(Debug, Clone, Copy)]
pub struct RepoBoard<'a> {
    /// The name the server knows the repository by (`--remote NAME=URL`, or `owner/name`).
    pub name: &'a str,
    /// The remote's URL, free of credentials.
    pub remote: &'a str,
    /// Its trains, newest first.
    pub trains: &'a [TrainReport],
    /// Its environments, as `konductor env` sees them.
    pub envs: &'a [konductor_core::ops::env_control::EnvView],
}

/// The live page's Content-Security-Policy: the static page's, plus the live script and
/// `connect-src 'self'` for the event stream.
fn live_csp() -> String {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}' 'sha256-{}'; \
         img-src 'none'; font-src 'none'; connect-src 'self'; base-uri 'none'; form-action 'none'",
        hash(STYLE),
        hash(SCRIPT),
        hash(LIVE_SCRIPT)
    )
}

/// What `<div id="live">` holds: for each repository its sections (environments, waiting
/// gates, trains, step graphs), headed by its name when there are several.
pub fn render_live_fragment(repos: &[RepoBoard<'_>], generated_at: i64) -> String {
    let generated = rfc3339(generated_at);
    let several = repos.len() > 1;
    html! {
        p class="muted" {
            "as of " time datetime=(E(&generated)) data-epoch=(generated_at) { (E(&show_time(&generated))) }
        } "\n"
        @for r in repos {
            section class="repo" id={ "repo-" (E(r.name)) } data-repo=(E(r.name)) {
                "\n"
                @if several {
                    h2 { (E(r.name)) " " code { (E(r.remote)) } } "\n"
                }
                (super::sections(r.trains, r.envs, &super::BoardChanges::default(), generated_at))
            }
            "\n"
        }
    }
    .into_string()
}

/// The whole live page. `events` is the event stream's path (`/events`, with the
/// repository filter if any); `version` names the fragment inside, so that the script
/// skips the same fragment when the stream sends it again.
pub fn render_live_page(
    repos: &[RepoBoard<'_>],
    generated_at: i64,
    version: u64,
    events: &str,
) -> String {
    let fragment = render_live_fragment(repos, generated_at);
    let names: Vec<&str> = repos.iter().map(|r| r.name).collect();
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            head {
                "\n"
                meta charset="utf-8"; "\n"
                meta http-equiv="Content-Security-Policy" content=(live_csp()); "\n"
                meta name="referrer" content="no-referrer"; "\n"
                meta name="viewport" content="width=device-width, initial-scale=1"; "\n"
                meta name="generator" content="konductor serve"; "\n"
                title { "Konductor board · " (E(&names.join(", "))) } "\n"
                style { (PreEscaped(STYLE)) } "\n"
            }
            "\n"
            body {
                "\n"
                header class="top" {
                    h1 { "Konductor board" }
                    div class="meta" {
                        @for r in repos {
                            span { "remote " code { (E(r.remote)) } }
                        }
                        span id="live-state" { "snapshot" }
                        span class="muted" { "all times UTC" }
                    }
                }
                "\n"
                main {
                    div id="live" data-version=(version) data-events=(E(events)) {
                        (PreEscaped(fragment))
                    }
                }
                "\n"
                footer {
                    "Served by " code { "konductor serve" } " from the tags on "
                    (E(&names.join(", ")))
                    ". Read-only: unblock, retry, cancel and rollback are CLI commands (shown on each gate)."
                }
                "\n"
                script { (PreEscaped(SCRIPT)) } "\n"
                script { (PreEscaped(LIVE_SCRIPT)) } "\n"
            }
            "\n"
        }
        "\n"
    }
    .into_string()
}
