//! The routes. Handlers are thin: they read the query, call the core on a blocking thread
//! (git2 is synchronous) or read the latest snapshot, and answer.

// Helpers return the error answer itself (`Result<_, Response>`), once per request.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use konductor_core::exit_codes;
use konductor_core::ops::{plan_train_any, refresh_train};
use konductor_core::report::{status_list, TrainReport};
use konductor_core::tag::{Tag, TrainId};
use konductor_web::RepoBoard;

use crate::webhook::{self, Event, Headers};
use crate::{log, App};

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(board))
        .route("/events", get(events))
        .route("/trains/{id}", get(train_link))
        .route("/environments/{name}", get(env_link))
        .route("/api/trains", get(api_trains))
        .route("/api/trains/{id}", get(api_train))
        .route("/api/environments", get(api_environments))
        .route("/webhook", post(hook))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// A JSON answer.
fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
    )
        .into_response()
}

/// A JSON error answer: `{"error": "…"}`.
fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": msg.into() }))
}

/// The value of query parameter `key`.
fn query(uri: &Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The repositories a request is about: `?repo=NAME`, or all of them.
fn selected(app: &App, uri: &Uri) -> Result<Vec<usize>, Response> {
    match query(uri, "repo") {
        None => Ok((0..app.repos.len()).collect()),
        Some(n) => app
            .repos
            .iter()
            .position(|r| r.cfg.name.eq_ignore_ascii_case(&n))
            .map(|i| vec![i])
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no repository `{n}` here"))),
    }
}

/// The one repository an API request is about: `?repo=NAME`, needed when there are several.
fn one(app: &App, uri: &Uri) -> Result<usize, Response> {
    let sel = selected(app, uri)?;
    if sel.len() == 1 {
        return Ok(sel[0]);
    }
    let names: Vec<String> = app
        .repos
        .iter()
        .map(|r| format!("`{}`", r.cfg.name))
        .collect();
    Err(error(
        StatusCode::BAD_REQUEST,
        format!(
            "several repositories: pass `?repo=NAME` ({})",
            names.join(", ")
        ),
    ))
}

/// Render the repositories `sel` from their latest snapshots with `f` (given the boards
/// and the time of the newest snapshot).
fn with_boards<R>(app: &App, sel: &[usize], f: impl FnOnce(&[RepoBoard<'_>], i64) -> R) -> R {
    let snaps: Vec<_> = sel
        .iter()
        .map(|&i| app.repos[i].snapshot.read().expect("lock").clone())
        .collect();
    let at = snaps
        .iter()
        .flatten()
        .map(|s| s.at)
        .max()
        .unwrap_or_else(konductor_core::time::now);
    let boards: Vec<RepoBoard<'_>> = sel
        .iter()
        .zip(&snaps)
        .map(|(&i, s)| RepoBoard {
            name: &app.repos[i].cfg.name,
            remote: &app.repos[i].cfg.remote.url,
            trains: s.as_ref().map_or(&[][..], |s| &s.list.trains[..]),
            envs: s.as_ref().map_or(&[][..], |s| &s.envs[..]),
        })
        .collect();
    f(&boards, at)
}

/// The board's sections for the repositories `sel`, from their latest snapshots.
fn fragment(app: &App, sel: &[usize]) -> (String, i64) {
    with_boards(app, sel, |boards, at| {
        (konductor_web::render_live_fragment(boards, at), at)
    })
}

fn events_path(uri: &Uri) -> String {
    match query(uri, "repo") {
        Some(r) => format!(
            "/events?repo={}",
            form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        ),
        None => "/events".into(),
    }
}

async fn board(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let sel = match selected(&app, &uri) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let version = *app.version.borrow();
    let page = with_boards(&app, &sel, |boards, at| {
        konductor_web::render_live_page(boards, at, version, &events_path(&uri))
    });
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

/// Counts a connected browser while its stream lives.
struct Client(Arc<App>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.dec();
    }
}

async fn events(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let sel = match selected(&app, &uri) {
        Ok(s) => s,
        Err(r) => return r,
    };
    app.metrics.sse_clients.inc();
    let rx = app.version.subscribe();
    let client = Client(app);
    let stream = futures_util::stream::unfold(
        (rx, client, sel, true),
        |(mut rx, client, sel, first)| async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            let v = *rx.borrow_and_update();
            let (html, _) = fragment(&client.0, &sel);
            let ev = SseEvent::default()
                .event("board")
                .id(v.to_string())
                .data(html.replace('\r', ""));
            Some((Ok::<_, Infallible>(ev), (rx, client, sel, false)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn parse_train(id: &str) -> Result<TrainId, Response> {
    id.parse::<TrainId>().map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("invalid train `{id}`: {}", e.reason),
        )
    })
}

async fn train_link(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let t = match parse_train(&id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let page = match query(&uri, "repo") {
        Some(_) if selected(&app, &uri).is_err() => return selected(&app, &uri).unwrap_err(),
        Some(r) => format!(
            "/?repo={}",
            form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        ),
        None => "/".into(),
    };
    Redirect::to(&format!("{page}#train-{t}")).into_response()
}

async fn env_link(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "production" | "prod" => Redirect::to("/#env-prod").into_response(),
        "staging" => Redirect::to("/#env-staging").into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no environment `{name}` on the board (`production`, `staging`)"),
        ),
    }
}

/// The HTTP status of a core error, by its exit code.
fn status_of(e: &konductor_core::error::Error) -> StatusCode {
    match e.exit_code() {
        exit_codes::BAD_INPUT => StatusCode::NOT_FOUND,
        exit_codes::REMOTE | exit_codes::AUTH => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Run `f` with repository `i`'s store on a blocking thread, timing it as a git read.
async fn with_store<T: Send + 'static>(
    app: &Arc<App>,
    i: usize,
    read: &'static str,
    f: impl FnOnce(&konductor_core::store::Store) -> konductor_core::error::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let a = app.clone();
    let r = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let r = a.open(&a.repos[i]).and_then(|s| f(&s));
        a.metrics.git_read(&a.repos[i].cfg.name, read, t0.elapsed());
        r
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(status_of(&e), e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn api_trains(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let i = match one(&app, &uri) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let horizon = app.cfg.horizon;
    match with_store(&app, i, "trains", move |s| {
        status_list(s, horizon, konductor_core::time::now())
    })
    .await
    {
        Ok(list) => json(
            StatusCode::OK,
            &serde_json::to_value(&list).unwrap_or_default(),
        ),
        Err(r) => r,
    }
}

async fn api_train(State(app): State<Arc<App>>, Path(id): Path<String>, uri: Uri) -> Response {
    let i = match one(&app, &uri) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let t = match parse_train(&id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match with_store(&app, i, "train", move |s| {
        refresh_train(s, t)?;
        let (p, archived) = plan_train_any(s, t, None, None, konductor_core::time::now())?;
        let mut r = TrainReport::new(&p);
        r.archived = archived;
        let changes = konductor_core::ops::diff::brings(
            s,
            t,
            &p.sdd,
            konductor_core::model::diff::DEFAULT_LIMIT,
        );
        let v = konductor_core::ops::diff::WithChanges {
            report: &r,
            changes: konductor_core::ops::diff::brings_json(&changes),
        };
        Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
    })
    .await
    {
        // The same JSON as `status --train N.P --json`, fields in their order.
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(r) => r,
    }
}

async fn api_environments(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let i = match one(&app, &uri) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match with_store(&app, i, "environments", move |s| {
        konductor_core::ops::env_view(s, None, None, konductor_core::time::now())
    })
    .await
    {
        Ok(envs) => json(StatusCode::OK, &serde_json::json!({ "environments": envs })),
        Err(r) => r,
    }
}

/// The environment whose DORA figures `/metrics` shows for repository `i`: `production`
/// if its graphs have it, else the first whose name starts with `prod`, else the last.
fn dora_env(app: &App, i: usize) -> Option<String> {
    let snap = app.repos[i].snapshot.read().expect("lock").clone()?;
    let names: Vec<&str> = snap.envs.iter().map(|e| e.environment.as_str()).collect();
    names
        .iter()
        .find(|n| **n == konductor_core::model::metrics::DEFAULT_ENV)
        .or_else(|| names.iter().find(|n| n.starts_with("prod")))
        .or(names.last())
        .map(|n| n.to_string())
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    // The figures read from the tags are computed per scrape (Prometheus scrapes rarely;
    // a tick does not pay for them).
    for i in 0..app.repos.len() {
        let figures = match dora_env(&app, i) {
            Some(env) => {
                let req = konductor_core::ops::metrics::MetricsRequest {
                    horizon: app.cfg.horizon,
                    env,
                    window_secs: konductor_core::model::metrics::DEFAULT_WINDOW_SECS,
                    now: konductor_core::time::now(),
                };
                let name = app.repos[i].cfg.name.clone();
                with_store(&app, i, "metrics", move |s| {
                    konductor_core::ops::metrics::metrics(s, &req).inspect_err(|e| {
                        crate::log!("repository `{name}`: cannot compute the tag figures: {e}")
                    })
                })
                .await
                .ok()
            }
            None => None,
        };
        app.metrics.tags.set(&app.repos[i].cfg.name, figures);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: a remote was not read yet\n",
        )
            .into_response()
    }
}

/// A webhook's answer: the status, one log line, one count.
fn verdict(
    app: &App,
    source: &str,
    delivery: &str,
    status: StatusCode,
    outcome: &str,
    detail: &str,
) -> Response {
    app.metrics.webhook(source, outcome);
    // Values from the payload (tag and repository names) could hold line breaks: one
    // webhook, one log line.
    let line: String = format!("webhook {source} delivery `{delivery}`: {outcome}: {detail}")
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    log!("{line}");
    json(
        status,
        &serde_json::json!({ "outcome": outcome, "detail": detail }),
    )
}

async fn hook(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let h = Headers {
        all: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    };
    let Some((src, event)) = webhook::identify(&h) else {
        return verdict(
            &app,
            "unknown",
            "-",
            StatusCode::BAD_REQUEST,
            "unknown-sender",
            "no `X-GitHub-Event`, `X-Gitlab-Event`, `X-Gitea-Event` or `X-Forgejo-Event` header",
        );
    };
    let source = src.as_str();
    let delivery = webhook::delivery_id(src, &h).unwrap_or("-").to_string();
    let body: Bytes = match axum::body::to_bytes(body, app.cfg.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return verdict(
                &app,
                source,
                &delivery,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                &format!("the body is over {} bytes", app.cfg.max_body),
            );
        }
    };
    let Some(secret) = app.cfg.webhook_secret.as_deref() else {
        return verdict(
            &app,
            source,
            &delivery,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no webhook secret is set (`KONDUCTOR_WEBHOOK_SECRET`)",
        );
    };
    if !webhook::verify(src, &h, &body, secret) {
        return verdict(
            &app,
            source,
            &delivery,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the signature or token is missing or wrong",
        );
    }
    if delivery != "-" && !app.seen.lock().expect("lock").insert(&delivery) {
        return verdict(
            &app,
            source,
            &delivery,
            StatusCode::OK,
            "duplicate",
            "this delivery was received already",
        );
    }
    let (name, ids) = match webhook::parse(src, &event, &body) {
        Ok(Event::Tag { name, repository }) => (name, repository),
        Ok(Event::Ignored(why)) => {
            return verdict(
                &app,
                source,
                &delivery,
                StatusCode::ACCEPTED,
                "ignored",
                &why,
            )
        }
        Err(webhook::Malformed(why)) => {
            return verdict(
                &app,
                source,
                &delivery,
                StatusCode::BAD_REQUEST,
                "malformed",
                &why,
            )
        }
    };
    let i = if app.repos.len() == 1 {
        0
    } else {
        let found = app.repos.iter().position(|r| {
            ids.iter().any(|x| {
                x.eq_ignore_ascii_case(&r.cfg.name)
                    || (r.slug.is_some() && webhook::repo_slug(x) == r.slug)
            })
        });
        match found {
            Some(i) => i,
            None => {
                let what = ids.first().cloned().unwrap_or_default();
                return verdict(
                    &app,
                    source,
                    &delivery,
                    StatusCode::NOT_FOUND,
                    "unknown-repository",
                    &format!("no remote here is `{what}`; name it with `--remote NAME=URL`"),
                );
            }
        }
    };
    let repo = app.repos[i].cfg.name.clone();
    match Tag::parse_any(&name) {
        Ok(Some(tag)) => {
            let t = tag.train();
            app.mark(i, t);
            verdict(
                &app,
                source,
                &delivery,
                StatusCode::ACCEPTED,
                "queued",
                &format!("tag `{name}` of `{repo}`: train {t} queued for a tick"),
            )
        }
        Ok(None) => verdict(
            &app,
            source,
            &delivery,
            StatusCode::ACCEPTED,
            "ignored",
            &format!("tag `{name}` is not under `release=`"),
        ),
        Err(e) => verdict(
            &app,
            source,
            &delivery,
            StatusCode::ACCEPTED,
            "ignored",
            &format!("tag `{name}` is not a Konductor tag: {}", e.reason),
        ),
    }
}
