//! `konductor serve`: a long-running, stateless server over one or more repositories.
//!
//! - `GET /` the board, live: the page of `konductor-web` with its sections swapped when
//!   the server sends a changed version on `GET /events` (Server-Sent Events);
//! - `POST /webhook` GitHub, GitLab, Gitea/Forgejo tag events ([`webhook`]): a train's
//!   tag marks the train dirty and wakes its repository's worker, which ticks it;
//! - a safety-net tick of every running train every `tick_every`;
//! - `GET /api/trains`, `/api/trains/{N.P}`, `/api/environments`: `status --json`'s values;
//! - `GET /metrics` ([`metrics`]), `/healthz`, `/readyz`;
//! - with `--notify`, after each tick the events of the trains it followed are delivered
//!   as `konductor tick --notify` does: once per event and target, whatever the number of
//!   replicas and cron ticks (the marker tags decide).
//!
//! All state is in the remotes' tags. Each repository has one worker task; its git work
//! (tick, then a fresh read for the board) runs on a blocking thread, since git2 is
//! synchronous, through the same core functions as `konductor tick` and `status`.
//! Webhooks only mark trains dirty: a burst of events for one train while a tick runs
//! leaves one dirty mark, so it costs one more tick, and no event is missed (an event
//! that arrives during a tick marks the train again). Ticks are exactly-once through
//! create-only tags, so any number of replicas and cron ticks may run beside this one.

#![warn(missing_docs)]

mod http;
pub mod metrics;
pub mod webhook;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use konductor_core::error::Error;
use konductor_core::ops::{tick, TickOptions};
use konductor_core::report::{status_list, StatusList};
use konductor_core::store::{CacheLocation, Identity, Remote, Store};
use konductor_core::tag::TrainId;
use tokio::sync::{watch, Notify};

use metrics::Metrics;

/// One repository the server follows.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    /// Its name: `NAME` of `--remote NAME=URL`, else `owner/name` of the URL.
    pub name: String,
    /// The remote.
    pub remote: Remote,
    /// Where to send notifications after each round of ticks (`--notify`), if anywhere.
    pub notifier: Option<konductor_core::ops::notify::Notifier>,
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen, `HOST:PORT` (port 0: any free port, printed at start).
    pub listen: String,
    /// The repositories, at least one.
    pub repos: Vec<RepoConfig>,
    /// Sign the tags ticks write with this SSH key.
    pub signing_key: Option<PathBuf>,
    /// Trust only tags signed by a key of this allowed-signers file.
    pub allowed_signers: Option<PathBuf>,
    /// The safety-net tick's interval.
    pub tick_every: Duration,
    /// How many of the newest train numbers to follow.
    pub horizon: u32,
    /// The webhook secret; without one every webhook is refused (401).
    pub webhook_secret: Option<String>,
    /// The largest webhook body accepted, in bytes.
    pub max_body: usize,
    /// Who the tags ticks write are from.
    pub identity: Identity,
}

/// The largest webhook body accepted by default: GitHub's tag pushes are a few KB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The name of a repository from its remote and an optional `NAME=`: `owner/name` of the
/// URL, or the URL itself when it has no two path segments.
pub fn repo_name(url: &str) -> String {
    webhook::repo_slug(url).unwrap_or_else(|| url.to_string())
}

/// What a read of a repository found, for the board and the metrics.
struct Snapshot {
    list: StatusList,
    envs: Vec<konductor_core::ops::env_control::EnvView>,
    json: serde_json::Value,
    at: i64,
}

/// One repository at run time.
struct Repo {
    cfg: RepoConfig,
    slug: Option<String>,
    dirty: Mutex<BTreeSet<TrainId>>,
    wake: Notify,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    reached: AtomicBool,
}

/// Delivery ids seen lately: a replay of one changes nothing.
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

/// How many delivery ids are remembered.
const SEEN_MAX: usize = 10_000;

impl Seen {
    /// Remember `id`; false when it was already seen.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

/// The server's shared state.
struct App {
    cfg: Config,
    repos: Vec<Arc<Repo>>,
    metrics: Metrics,
    seen: Mutex<Seen>,
    /// Bumped whenever a repository's trains changed; `/events` streams follow it.
    version: watch::Sender<u64>,
}

/// Print one log line.
macro_rules! log {
    ($($arg:tt)*) => { eprintln!("konductor serve: {}", format!($($arg)*)) };
}
pub(crate) use log;

impl App {
    /// Open `repo`'s store (this blocks while another command of this machine holds the
    /// cache), with the signing settings.
    fn open(&self, repo: &Repo) -> konductor_core::error::Result<Store> {
        let mut s = Store::open(repo.cfg.remote.clone(), CacheLocation::Auto)?;
        s.set_signing(
            self.cfg.signing_key.clone(),
            self.cfg.allowed_signers.clone(),
        )?;
        Ok(s)
    }

    /// One round of a worker, on a blocking thread: tick the dirty trains (or every
    /// running train), then read the repository again for the board.
    fn work(&self, i: usize, all: bool, trains: BTreeSet<TrainId>) {
        let repo = &self.repos[i];
        let name = repo.cfg.name.as_str();
        let store = match self.open(repo) {
            Ok(s) => s,
            Err(e) => {
                log!("repository `{name}`: {e}");
                self.metrics.tick(
                    name,
                    if all { "interval" } else { "webhook" },
                    false,
                    Duration::ZERO,
                );
                return;
            }
        };
        let mut jobs: Vec<(Option<TrainId>, &str)> =
            trains.iter().map(|t| (Some(*t), "webhook")).collect();
        if all {
            jobs.push((None, "interval"));
        }
        for (train, cause) in jobs {
            let opts = TickOptions {
                train,
                horizon: self.cfg.horizon,
                ..TickOptions::default()
            };
            let t0 = Instant::now();
            let now = konductor_core::time::now();
            let result = tick(&store, &opts, &self.cfg.identity, now);
            let took = t0.elapsed();
            let what = train.map_or("every running train".to_string(), |t| format!("train {t}"));
            match result {
                Ok(r) => {
                    let created: Vec<&str> = r
                        .trains
                        .iter()
                        .flat_map(|t| t.actions.iter())
                        .filter(|a| a.outcome == "created")
                        .map(|a| a.tag.as_str())
                        .collect();
                    let ok = r.exit_code() == 0;
                    self.metrics.tick(name, cause, ok, took);
                    for t in &r.trains {
                        if let Some(e) = &t.error {
                            log!("tick `{name}` train {}: {e}", t.train);
                        }
                        for a in t.actions.iter().filter(|a| a.error.is_some()) {
                            log!(
                                "tick `{name}` train {}: `{}`: {}",
                                t.train,
                                a.tag,
                                a.error.as_deref().unwrap_or("")
                            );
                        }
                    }
                    if let Some(e) = &r.stopped {
                        log!("tick `{name}` {what} ({cause}): stopped: {e}");
                    } else {
                        self.notify(&store, repo, &r, now);
                        log!(
                            "tick `{name}` {what} ({cause}): {} tag(s) created{}{} in {} ms",
                            created.len(),
                            if created.is_empty() { "" } else { ": " },
                            created.join(", "),
                            took.as_millis()
                        );
                    }
                }
                Err(e) => {
                    self.metrics.tick(name, cause, false, took);
                    log!("tick `{name}` {what} ({cause}): {e}");
                }
            }
        }
        let t0 = Instant::now();
        let now = konductor_core::time::now();
        match status_list(&store, self.cfg.horizon, now) {
            Ok(list) => {
                self.metrics.git_read(name, "board", t0.elapsed());
                let envs =
                    match konductor_core::ops::env_control::env_view_of_list(&store, &list, now) {
                        Ok(v) => v,
                        Err(e) => {
                            log!("repository `{name}`: cannot read the environments: {e}");
                            Vec::new()
                        }
                    };
                let json = serde_json::json!({ "trains": &list, "environments": &envs });
                let changed = repo
                    .snapshot
                    .read()
                    .expect("lock")
                    .as_ref()
                    .is_none_or(|s| s.json != json);
                let snap = Arc::new(Snapshot {
                    list,
                    envs,
                    json,
                    at: now,
                });
                *repo.snapshot.write().expect("lock") = Some(snap.clone());
                // Counted once the snapshot (with the environments `/metrics` reads) is in
                // place.
                self.metrics.observe_trains(name, &snap.list.trains);
                repo.reached.store(true, Ordering::SeqCst);
                if changed {
                    self.version.send_modify(|v| *v += 1);
                }
            }
            Err(e) => log!("repository `{name}`: cannot read the trains: {e}"),
        }
    }

    /// After a tick that was not stopped: deliver the events of the trains it followed,
    /// as `konductor tick --notify` does, and log each delivery (errors redacted).
    fn notify(&self, store: &Store, repo: &Repo, r: &konductor_core::ops::TickReport, now: i64) {
        let Some(n) = &repo.cfg.notifier else {
            return;
        };
        let name = repo.cfg.name.as_str();
        let trains: Vec<TrainId> = r
            .trains
            .iter()
            .filter(|t| t.error.is_none())
            .filter_map(|t| t.train.parse().ok())
            .collect();
        if trains.is_empty() {
            return;
        }
        match konductor_core::ops::notify::notify_trains(
            store,
            n,
            &trains,
            None,
            None,
            &self.cfg.identity,
            now,
        ) {
            Ok(rep) => {
                for d in &rep.deliveries {
                    match (d.outcome.as_str(), &d.error) {
                        ("failed", Some(e)) => log!(
                            "warning: notify `{name}`: {} → {}: attempt {} failed, tried again later: {e}",
                            d.id, d.target, d.attempt
                        ),
                        ("gave-up", Some(e)) => log!(
                            "warning: notify `{name}`: {} → {}: gave up after attempt {}: {e}",
                            d.id, d.target, d.attempt
                        ),
                        (other, e) => {
                            log!("notify `{name}`: {} → {}: {other}", d.id, d.target);
                            if let Some(e) = e {
                                log!("warning: notify `{name}`: {} → {}: {e}", d.id, d.target);
                            }
                        }
                    }
                }
                for e in &rep.errors {
                    log!("warning: notify `{name}`: {e}");
                }
            }
            Err(e) => log!("warning: notify `{name}`: {e}"),
        }
    }

    /// Mark `train` of repository `i` dirty and wake its worker.
    fn mark(&self, i: usize, train: TrainId) {
        self.repos[i].dirty.lock().expect("lock").insert(train);
        self.repos[i].wake.notify_one();
    }

    /// Whether every repository was read once.
    fn ready(&self) -> bool {
        self.repos.iter().all(|r| r.reached.load(Ordering::SeqCst))
    }
}

/// A repository's worker: wait for a webhook's wake-up or the interval, then work.
async fn worker(app: Arc<App>, i: usize) {
    let mut interval = tokio::time::interval(app.cfg.tick_every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = interval.tick() => true,
            _ = app.repos[i].wake.notified() => false,
        };
        let trains = std::mem::take(&mut *app.repos[i].dirty.lock().expect("lock"));
        if !all && trains.is_empty() {
            continue;
        }
        let a = app.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || a.work(i, all, trains)).await {
            log!(
                "repository `{}`: the worker failed: {e}",
                app.repos[i].cfg.name
            );
        }
    }
}

/// Run the server until the process is stopped. Errors: no repository, two with the
/// same name, or the address cannot be listened on.
pub fn run(cfg: Config) -> konductor_core::error::Result<()> {
    if cfg.repos.is_empty() {
        return Err(Error::input(
            "no remote: pass `--remote URL` (or `--remote NAME=URL`, several times)",
        ));
    }
    let mut names = HashSet::new();
    for r in &cfg.repos {
        if !names.insert(r.name.to_lowercase()) {
            return Err(Error::input(format!(
                "two remotes are named `{}`; name them with `--remote NAME=URL`",
                r.name
            )));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            what: "cannot start the server's runtime".into(),
            source: e,
        })?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> konductor_core::error::Result<()> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Error::Io {
            what: format!("cannot listen on `{}`", cfg.listen),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Io {
        what: format!("cannot listen on `{}`", cfg.listen),
        source: e,
    })?;
    if cfg.webhook_secret.is_none() {
        log!("warning: `KONDUCTOR_WEBHOOK_SECRET` is not set: every webhook is refused (401); trains advance on the {} s tick", cfg.tick_every.as_secs());
    }
    let repos = cfg
        .repos
        .iter()
        .map(|r| {
            Arc::new(Repo {
                slug: webhook::repo_slug(&r.remote.url),
                cfg: r.clone(),
                dirty: Mutex::new(BTreeSet::new()),
                wake: Notify::new(),
                snapshot: RwLock::new(None),
                reached: AtomicBool::new(false),
            })
        })
        .collect();
    let (version, _) = watch::channel(0u64);
    let app = Arc::new(App {
        cfg,
        repos,
        metrics: Metrics::new(),
        seen: Mutex::new(Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
        }),
        version,
    });
    log!(
        "listening on http://{addr} for {}",
        app.repos
            .iter()
            .map(|r| format!("`{}` ({})", r.cfg.name, r.cfg.remote.url))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for i in 0..app.repos.len() {
        tokio::spawn(worker(app.clone(), i));
    }
    axum::serve(listener, http::router(app))
        .await
        .map_err(|e| Error::Io {
            what: "the server stopped".into(),
            source: e,
        })
}
