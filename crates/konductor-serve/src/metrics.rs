//! `GET /metrics`: the server's own figures, in the Prometheus/OpenMetrics text format
//! (the `prometheus-client` crate encodes them).
//!
//! Two kinds of figures:
//! - operational, counted as the server works: webhooks by source and outcome, ticks by
//!   cause and outcome and their duration, git read latency, SSE clients;
//! - figures read from the tags, set after every read of a repository
//!   ([`Metrics::observe_trains`]): today the trains by state. Figures computed by the
//!   core from the same reports (DORA, step durations, waits) plug in there: register
//!   their families in [`Metrics::new`] and set them in `observe_trains`.

use std::time::Duration;

use konductor_core::report::TrainReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The labels of `konductor_webhooks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `github`, `gitlab`, `gitea`, `forgejo` or `unknown`.
    pub source: String,
    /// What became of it (see docs/operations.md, "Webhooks").
    pub outcome: String,
}

/// The labels of the tick figures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TickLabels {
    /// The repository's name.
    pub repo: String,
    /// `webhook` (one train, dirty after an event) or `interval` (every running train).
    pub cause: String,
    /// `ok` or `error`.
    pub outcome: String,
}

/// The labels of the git read latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    /// The repository's name.
    pub repo: String,
    /// `board` (the snapshot after a tick), `trains`, `train`.
    pub read: String,
}

/// The labels of figures per repository and train state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The repository's name.
    pub repo: String,
    /// The train state (`running`, `blocked`, …).
    pub state: String,
}

/// Every figure, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Webhooks received, by source and outcome.
    pub webhooks: Family<WebhookLabels, Counter>,
    /// Ticks run, by repository, cause and outcome.
    pub ticks: Family<TickLabels, Counter>,
    /// How long ticks took.
    pub tick_seconds: Family<TickLabels, Histogram>,
    /// How long reads of the remote took (fetch, plan, report).
    pub git_read_seconds: Family<ReadLabels, Histogram>,
    /// Browsers connected to `GET /events`.
    pub sse_clients: Gauge,
    /// Trains by state, from the latest read of each repository.
    pub trains: Family<StateLabels, Gauge>,
}

fn seconds_histogram() -> Histogram {
    // 5 ms to ~40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let ticks = Family::<TickLabels, Counter>::default();
        let tick_seconds =
            Family::<TickLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        let git_read_seconds =
            Family::<ReadLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        let sse_clients = Gauge::default();
        let trains = Family::<StateLabels, Gauge>::default();
        registry.register(
            "konductor_webhooks",
            "Webhooks received, by source and outcome",
            webhooks.clone(),
        );
        registry.register("konductor_ticks", "Ticks run by the server", ticks.clone());
        registry.register(
            "konductor_tick_seconds",
            "How long the server's ticks took",
            tick_seconds.clone(),
        );
        registry.register(
            "konductor_git_read_seconds",
            "How long reads of a repository's tags took",
            git_read_seconds.clone(),
        );
        registry.register(
            "konductor_sse_clients",
            "Browsers connected to the live board's event stream",
            sse_clients.clone(),
        );
        registry.register(
            "konductor_trains",
            "Trains among the newest, by state, at the latest read",
            trains.clone(),
        );
        Metrics {
            registry,
            webhooks,
            ticks,
            tick_seconds,
            git_read_seconds,
            sse_clients,
            trains,
        }
    }

    /// Count one webhook.
    pub fn webhook(&self, source: &str, outcome: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                source: source.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Count one tick and its duration.
    pub fn tick(&self, repo: &str, cause: &str, ok: bool, took: Duration) {
        let l = TickLabels {
            repo: repo.into(),
            cause: cause.into(),
            outcome: if ok { "ok" } else { "error" }.into(),
        };
        self.ticks.get_or_create(&l).inc();
        self.tick_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    /// Record one read of a repository.
    pub fn git_read(&self, repo: &str, read: &str, took: Duration) {
        self.git_read_seconds
            .get_or_create(&ReadLabels {
                repo: repo.into(),
                read: read.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// Set the figures read from the tags of `repo`'s newest trains.
    pub fn observe_trains(&self, repo: &str, trains: &[TrainReport]) {
        for st in [
            "running",
            "blocked",
            "failed",
            "succeeded",
            "cancelled",
            "superseded",
        ] {
            let n = trains.iter().filter(|t| t.state.as_str() == st).count();
            self.trains
                .get_or_create(&StateLabels {
                    repo: repo.into(),
                    state: st.into(),
                })
                .set(n as i64);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family() {
        let m = Metrics::new();
        m.webhook("github", "queued");
        m.tick("acme/app", "webhook", true, Duration::from_millis(20));
        m.git_read("acme/app", "board", Duration::from_millis(3));
        let text = m.encode();
        for want in [
            "konductor_webhooks_total{source=\"github\",outcome=\"queued\"} 1",
            "konductor_ticks_total{repo=\"acme/app\",cause=\"webhook\",outcome=\"ok\"} 1",
            "konductor_tick_seconds_count{repo=\"acme/app\",cause=\"webhook\",outcome=\"ok\"} 1",
            "konductor_git_read_seconds_bucket{",
            "konductor_sse_clients 0",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
    }
}
