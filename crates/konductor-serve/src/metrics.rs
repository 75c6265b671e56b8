//! `GET /metrics`: the server's own figures, in the Prometheus/OpenMetrics text format
//! (the `prometheus-client` crate encodes them).
//!
//! Two kinds of figures:
//! - operational, counted as the server works: webhooks by source and outcome, ticks by
//!   cause and outcome and their duration, git read latency, SSE clients;
//! - figures read from the tags: the trains by state, set after every read of a
//!   repository ([`Metrics::observe_trains`]), and what `konductor metrics` computes
//!   (`konductor_core::ops::metrics`: the DORA figures, step durations, waits at gates
//!   and environments), computed on each scrape and written by the [`TagFigures`]
//!   collector: those histograms are rebuilt from the tags every time, so they are
//!   encoded as they are, not observed into a running histogram.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use konductor_core::model::metrics::{Histogram as TagHistogram, Metrics as TagMetrics};
use konductor_core::report::TrainReport;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
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
    /// The figures `konductor metrics` computes, per repository, from the latest scrape.
    pub tags: Arc<TagFigures>,
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
        let tags = Arc::new(TagFigures::default());
        registry.register_collector(Box::new(tags.clone()));
        Metrics {
            tags,
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

/// The figures of `konductor metrics` for each repository (see
/// `docs/operations.md`, "Metrics"), as the last scrape computed them.
#[derive(Debug, Default)]
pub struct TagFigures {
    latest: Mutex<BTreeMap<String, TagMetrics>>,
}

impl TagFigures {
    /// Keep `m` as the figures of `repo` (`None`: the repository has none, e.g. no
    /// environment in its graphs).
    pub fn set(&self, repo: &str, m: Option<TagMetrics>) {
        let mut latest = self.latest.lock().expect("lock");
        match m {
            Some(m) => latest.insert(repo.to_string(), m),
            None => latest.remove(repo),
        };
    }
}

/// Cumulative core buckets to what `encode_histogram` takes (each bucket's own count:
/// the encoder sums them again).
fn buckets(h: &TagHistogram) -> Vec<(f64, u64)> {
    let mut prev = 0;
    let mut out: Vec<(f64, u64)> = h
        .bounds
        .iter()
        .zip(&h.counts)
        .map(|(b, c)| {
            let own = c.saturating_sub(prev);
            prev = *c;
            (*b, own)
        })
        .collect();
    // prometheus-client writes `+Inf` for `f64::MAX`, as its own histograms end.
    out.push((f64::MAX, h.count.saturating_sub(prev)));
    out
}

type Labels = Vec<(&'static str, String)>;

fn histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, &TagHistogram)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        m.encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum,
                h.count,
                &buckets(h),
                None,
            )?;
    }
    Ok(())
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for TagFigures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let latest = self.latest.lock().expect("lock");
        let repo = |r: &str| vec![("repo", r.to_string())];
        let mut steps = Vec::new();
        let mut gates = Vec::new();
        let mut envs = Vec::new();
        let mut g: BTreeMap<&str, Vec<(Labels, f64)>> = BTreeMap::new();
        for (r, m) in latest.iter() {
            for (step, h) in &m.step_duration_histograms {
                let mut l = repo(r);
                l.push(("step", step.clone()));
                steps.push((l, h));
            }
            gates.push((repo(r), &m.gate_wait_histogram));
            for (env, h) in &m.env_wait_histograms {
                let mut l = repo(r);
                l.push(("environment", env.clone()));
                envs.push((l, h));
            }
            let mut l = repo(r);
            l.push(("environment", m.env.clone()));
            let d = &m.dora;
            let mut put = |k: &'static str, v: Option<f64>| {
                if let Some(v) = v {
                    g.entry(k).or_default().push((l.clone(), v));
                }
            };
            put("window", Some(m.window_secs as f64));
            put("deploys", Some(d.deploys as f64));
            put("rollbacks", Some(d.rollbacks as f64));
            put("per_day", Some(d.deploys_per_day));
            put("lead", d.lead_time.median_secs);
            put("failed", Some(d.failed_deploys as f64));
            put("cfr", d.change_failure_rate);
            put("restore", d.time_to_restore.median_secs);
        }
        histograms(
            &mut enc,
            "konductor_step_duration_seconds",
            "Runs of each step, from the trigger tag to the final state (konductor metrics)",
            &steps,
        )?;
        histograms(
            &mut enc,
            "konductor_gate_wait_seconds",
            "Waits at manual gates, from ready to unblocked",
            &gates,
        )?;
        histograms(
            &mut enc,
            "konductor_environment_wait_seconds",
            "Waits of deploy steps for their environment, from ready to triggered",
            &envs,
        )?;
        for (k, name, help) in [
            (
                "window",
                "konductor_dora_window_seconds",
                "The window the DORA figures cover",
            ),
            (
                "deploys",
                "konductor_dora_deploys",
                "Deploys to the environment in the window (deployment frequency)",
            ),
            (
                "per_day",
                "konductor_dora_deploys_per_day",
                "Deploys per day over the window",
            ),
            (
                "rollbacks",
                "konductor_dora_rollbacks",
                "Rollback commits under the deploy tag in the window",
            ),
            (
                "lead",
                "konductor_dora_lead_time_median_seconds",
                "Median lead time for changes: train commit to deploy",
            ),
            (
                "failed",
                "konductor_dora_failed_deploys",
                "Deploys followed by a failure or a rollback",
            ),
            (
                "cfr",
                "konductor_dora_change_failure_rate",
                "Change failure rate (absent without deploys)",
            ),
            (
                "restore",
                "konductor_dora_time_to_restore_median_seconds",
                "Median time to restore (absent without incidents)",
            ),
        ] {
            gauges(&mut enc, name, help, g.get(k).map_or(&[][..], |v| &v[..]))?;
        }
        Ok(())
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

    #[test]
    fn tag_figures_are_encoded_per_repository_with_decumulated_buckets() {
        use konductor_core::model::metrics::{compute, DeployCommit, MetricsOptions};
        let m = Metrics::new();
        let deploys = [DeployCommit::from_message(
            "abc",
            190_000,
            "deploy\n\ntrain: 1.0\nrollback: true\n",
        )];
        let figures = compute(
            &[],
            &deploys,
            &MetricsOptions {
                env: "production".into(),
                now: 200_000,
                window_secs: 86_400,
            },
        );
        m.tags.set("acme/app", Some(figures));
        let text = m.encode();
        for want in [
            "konductor_dora_deploys{repo=\"acme/app\",environment=\"production\"} 0.0",
            "konductor_dora_rollbacks{repo=\"acme/app\",environment=\"production\"} 1.0",
            "konductor_dora_window_seconds{repo=\"acme/app\",environment=\"production\"} 86400.0",
            "konductor_gate_wait_seconds_bucket{le=\"+Inf\",repo=\"acme/app\"} 0",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        // No deploys: no change failure rate, rather than a made-up 0.
        assert!(
            !text.contains("konductor_dora_change_failure_rate{"),
            "{text}"
        );
        m.tags.set("acme/app", None);
        assert!(!m.encode().contains("konductor_dora_deploys{"));

        let h = TagHistogram {
            bounds: vec![10.0, 60.0],
            counts: vec![2, 5],
            count: 7,
            sum: 300.0,
        };
        assert_eq!(buckets(&h), vec![(10.0, 2), (60.0, 3), (f64::MAX, 2)]);
    }
}
