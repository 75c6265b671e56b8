//! A fake GitHub REST API on loopback for installation tokens: it answers
//! `POST /app/installations/{id}/access_tokens` only after checking the JWT the way GitHub
//! does (RS256 signature against the App's public key, `iss` = the App id, `iat` in the
//! past, `exp` in the future and at most 10 minutes ahead) and the request's headers.
//! Anything else gets 401 (a bad JWT) or 404 (another path), with GitHub's JSON shape.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An RSA key pair made by `openssl` for one test: the private key as GitHub hands it out
/// (PKCS#1 PEM) and the public key (SPKI PEM).
pub struct AppKey {
    pub private_pem: String,
    pub public_pem: String,
}

impl AppKey {
    pub fn generate(dir: &Path) -> AppKey {
        let key = dir.join("app.pem");
        let ok = Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .expect("run openssl genrsa");
        assert!(ok.status.success(), "openssl genrsa: {ok:?}");
        let public = Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .output()
            .expect("run openssl rsa -pubout");
        assert!(public.status.success(), "openssl rsa: {public:?}");
        AppKey {
            private_pem: std::fs::read_to_string(&key).unwrap(),
            public_pem: String::from_utf8(public.stdout).unwrap(),
        }
    }
}

/// What the fake saw: one entry per request, `(path, verdict)`.
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// The fake API, serving until dropped.
pub struct FakeGitHubApi {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub seen: Seen,
    /// The JWTs it received (to check they never show up in output).
    pub jwts: Arc<Mutex<Vec<String>>>,
    stop: Arc<Mutex<bool>>,
}

impl Drop for FakeGitHubApi {
    fn drop(&mut self) {
        *self.stop.lock().unwrap() = true;
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

impl FakeGitHubApi {
    /// Serve tokens for App `app_id`, installation `installation_id`, signed with `key`;
    /// the token handed out is `token`.
    pub fn start(app_id: &str, installation_id: &str, public_pem: &str, token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let jwts: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(Mutex::new(false));
        let (app_id, path, public_pem, token) = (
            app_id.to_string(),
            format!("/app/installations/{installation_id}/access_tokens"),
            public_pem.to_string(),
            token.to_string(),
        );
        let (seen2, jwts2, stop2) = (seen.clone(), jwts.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: a test makes a handful of requests.
            for _ in 0..64 {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                if *stop2.lock().unwrap() {
                    return;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                handle(stream, &app_id, &path, &public_pem, &token, &seen2, &jwts2);
            }
        });
        FakeGitHubApi {
            base,
            seen,
            jwts,
            stop,
        }
    }
}

fn handle(
    stream: TcpStream,
    app_id: &str,
    want_path: &str,
    public_pem: &str,
    token: &str,
    seen: &Seen,
    jwts: &Arc<Mutex<Vec<String>>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; length.min(1 << 16)];
    let _ = reader.read_exact(&mut body);
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let verdict = check(
        &method,
        &path,
        want_path,
        header("accept"),
        header("authorization"),
        app_id,
        public_pem,
        jwts,
    );
    let (status, body) = match &verdict {
        Ok(()) => {
            let expires = SystemTime::now() + Duration::from_secs(3600);
            let secs = expires.duration_since(UNIX_EPOCH).unwrap().as_secs();
            (
                "201 Created",
                format!(
                    r#"{{"token":"{token}","expires_at":"{}","permissions":{{"contents":"write"}}}}"#,
                    konductor_core::model::time::rfc3339(secs as i64)
                ),
            )
        }
        Err((code, msg)) => (
            *code,
            format!(r#"{{"message":"{msg}","documentation_url":"https://docs.github.com/rest"}}"#),
        ),
    };
    seen.lock().unwrap().push((
        path.clone(),
        verdict.err().map_or("ok".into(), |(_, m)| m.to_string()),
    ));
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[allow(clippy::too_many_arguments)]
fn check(
    method: &str,
    path: &str,
    want_path: &str,
    accept: Option<&str>,
    authorization: Option<&str>,
    app_id: &str,
    public_pem: &str,
    jwts: &Arc<Mutex<Vec<String>>>,
) -> Result<(), (&'static str, &'static str)> {
    if method != "POST" || path != want_path {
        return Err(("404 Not Found", "Not Found"));
    }
    if accept != Some("application/vnd.github+json") {
        return Err(("415 Unsupported Media Type", "Unsupported Accept header"));
    }
    let Some(jwt) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return Err(("401 Unauthorized", "A JSON web token could not be decoded"));
    };
    jwts.lock().unwrap().push(jwt.to_string());
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| ("401 Unauthorized", "A JSON web token could not be decoded"))?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(("401 Unauthorized", "'alg' must be RS256"));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "iat", "iss"]);
    v.leeway = 0;
    let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v)
        .map_err(|_| ("401 Unauthorized", "A JSON web token could not be decoded"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let c = data.claims;
    let num = |k: &str| c.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    if c.get("iss").and_then(serde_json::Value::as_str) != Some(app_id) {
        return Err(("401 Unauthorized", "Integration not found"));
    }
    let (iat, exp) = (num("iat"), num("exp"));
    if iat > now || exp <= now || exp > now + 600 {
        return Err((
            "401 Unauthorized",
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    Ok(())
}

/// What the fake REST API recorded: `(method path, body, verdict)`; verdict `ok` or why
/// it refused.
pub type Calls = Arc<Mutex<Vec<(String, serde_json::Value, String)>>>;

/// A fake of the GitHub REST endpoints notifications call: commit statuses, deployments
/// deployment statuses and issue comments of one repository. It checks the token
/// (`Authorization: Bearer …`), the `Accept` and `X-GitHub-Api-Version` headers and the
/// payloads' shapes as GitHub documents them, and answers with GitHub's status codes.
pub struct FakeGitHubRest {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub calls: Calls,
}

impl FakeGitHubRest {
    pub fn start(repo: &str, token: &str) -> FakeGitHubRest {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let calls: Calls = Arc::default();
        let (calls2, repo, token) = (calls.clone(), repo.to_string(), token.to_string());
        std::thread::spawn(move || {
            let mut deployments: Vec<u64> = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(req) = crate::support::receiver::read_request(&stream) else {
                    continue;
                };
                let body = req.json();
                let verdict = rest_check(&req, &body, &repo, &token, &mut deployments);
                let (status, answer) = match &verdict {
                    Ok(a) => (201, a.clone()),
                    Err((code, msg)) => (
                        *code,
                        format!(
                            r#"{{"message":"{msg}","documentation_url":"https://docs.github.com/rest"}}"#
                        ),
                    ),
                };
                calls2.lock().unwrap().push((
                    format!("{} {}", req.method, req.path),
                    body,
                    verdict.err().map_or("ok".into(), |(_, m)| m.to_string()),
                ));
                crate::support::receiver::answer(stream, status, &answer);
            }
        });
        FakeGitHubRest { base, calls }
    }

    pub fn calls(&self) -> Vec<(String, serde_json::Value, String)> {
        self.calls.lock().unwrap().clone()
    }
}

fn rest_check(
    req: &crate::support::receiver::Request,
    body: &serde_json::Value,
    repo: &str,
    token: &str,
    deployments: &mut Vec<u64>,
) -> Result<String, (u16, &'static str)> {
    if req.header("authorization") != Some(&format!("Bearer {token}")) {
        return Err((401, "Bad credentials"));
    }
    if req.header("accept") != Some("application/vnd.github+json") {
        return Err((415, "Unsupported Accept header"));
    }
    if req.header("x-github-api-version") != Some("2022-11-28") {
        return Err((400, "Missing or unknown X-GitHub-Api-Version"));
    }
    if req.method != "POST" {
        return Err((404, "Not Found"));
    }
    let prefix = format!("/repos/{repo}/");
    let Some(rest) = req.path.strip_prefix(&prefix) else {
        return Err((404, "Not Found"));
    };
    let s = |k: &str| body.get(k).and_then(serde_json::Value::as_str);
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["statuses", sha] => {
            if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err((422, "No commit found for SHA"));
            }
            if !matches!(
                s("state"),
                Some("error" | "failure" | "pending" | "success")
            ) {
                return Err((422, "Validation Failed: state"));
            }
            if !s("context").is_some_and(|c| c.starts_with("konductor/") && c.len() > 10) {
                return Err((422, "Validation Failed: context"));
            }
            if s("description").is_some_and(|d| d.chars().count() > 140) {
                return Err((422, "Validation Failed: description is too long"));
            }
            if body.get("target_url").is_some_and(|u| !u.is_string()) {
                return Err((422, "Validation Failed: target_url"));
            }
            Ok(format!(r#"{{"id":1,"state":"{}"}}"#, s("state").unwrap()))
        }
        ["deployments"] => {
            if s("ref").is_none_or(|r| r.len() != 40)
                || s("environment").is_none_or(str::is_empty)
                || body.get("auto_merge") != Some(&serde_json::Value::Bool(false))
                || body.get("required_contexts") != Some(&serde_json::json!([]))
            {
                return Err((422, "Validation Failed: deployment"));
            }
            let id = 1000 + deployments.len() as u64;
            deployments.push(id);
            Ok(format!(
                r#"{{"id":{id},"environment":"{}"}}"#,
                s("environment").unwrap()
            ))
        }
        ["deployments", id, "statuses"] => {
            if !id.parse::<u64>().is_ok_and(|i| deployments.contains(&i)) {
                return Err((404, "Not Found"));
            }
            if !matches!(
                s("state"),
                Some(
                    "error"
                        | "failure"
                        | "inactive"
                        | "in_progress"
                        | "queued"
                        | "pending"
                        | "success"
                )
            ) {
                return Err((422, "Validation Failed: state"));
            }
            Ok(r#"{"id":1}"#.to_string())
        }
        ["issues", number, "comments"] => {
            if !number.parse::<u64>().is_ok_and(|n| n > 0) {
                return Err((404, "Not Found"));
            }
            if !s("body").is_some_and(|b| !b.trim().is_empty() && b.chars().count() <= 65_536) {
                return Err((422, "Validation Failed: body"));
            }
            Ok(r#"{"id":1}"#.to_string())
        }
        _ => Err((404, "Not Found")),
    }
}
