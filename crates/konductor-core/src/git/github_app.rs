//! GitHub App installation tokens, minted on the fly.
//!
//! An installation token expires an hour after it is made, so a token stored as a secret
//! stops working an hour after set-up. Konductor makes its own instead, from the App's id,
//! the installation id and the App's private key:
//!
//! 1. a JWT signed with the key (RS256; `iss` = the App id, `iat` = now − 60 s against
//!    clock drift, `exp` = now + 9 min: GitHub refuses more than 10);
//! 2. `POST {api}/app/installations/{id}/access_tokens` with `Authorization: Bearer <jwt>`;
//! 3. the answer's `token` (and `expires_at`) is then the password of `x-access-token`
//!    for https fetches and pushes.
//!
//! The token is kept in memory for the rest of the process while it has more than five
//! minutes left; nothing is written to disk (a CronJob run mints one token per run).
//! The key, the JWT and the token never appear in output, logs or errors: everything this
//! module puts into an error goes through [`redact`].
//!
//! Configuration ([`AppCredentials::from_env`]): `KONDUCTOR_GITHUB_APP_ID`,
//! `KONDUCTOR_GITHUB_INSTALLATION_ID`, the PEM key in `KONDUCTOR_GITHUB_APP_KEY` or a file
//! named by `KONDUCTOR_GITHUB_APP_KEY_FILE`, and `KONDUCTOR_GITHUB_API` (default
//! `https://api.github.com`; `http://` works too, for tests and proxies).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The default GitHub REST API base.
pub const DEFAULT_API: &str = "https://api.github.com";

/// How long before its expiry a cached token is replaced, in seconds.
const REFRESH_MARGIN: i64 = 300;

/// How long one request to the API may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a GitHub App installation token is minted from.
#[derive(Clone)]
pub struct AppCredentials {
    /// The App's id (the JWT's `iss`).
    pub app_id: String,
    /// The installation the token is for.
    pub installation_id: String,
    key_pem: String,
    /// The REST API base, without a trailing `/`.
    pub api: String,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// An installation token and when it expires.
#[derive(Clone)]
pub struct InstallationToken {
    /// The token: the password of `x-access-token`.
    pub token: String,
    /// Its expiry, in seconds since the epoch (an hour after minting if GitHub said nothing).
    pub expires_at: i64,
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn var(k: &str) -> Option<String> {
    std::env::var(k)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl AppCredentials {
    /// The App credentials from the environment: `None` when none of
    /// `KONDUCTOR_GITHUB_APP_ID`, `KONDUCTOR_GITHUB_INSTALLATION_ID`,
    /// `KONDUCTOR_GITHUB_APP_KEY` and `KONDUCTOR_GITHUB_APP_KEY_FILE` is set; an input error
    /// when only some are, or an id is not a number.
    pub fn from_env() -> Result<Option<AppCredentials>> {
        let app_id = var("KONDUCTOR_GITHUB_APP_ID");
        let installation_id = var("KONDUCTOR_GITHUB_INSTALLATION_ID");
        let key = std::env::var("KONDUCTOR_GITHUB_APP_KEY")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let key_file = var("KONDUCTOR_GITHUB_APP_KEY_FILE");
        if app_id.is_none() && installation_id.is_none() && key.is_none() && key_file.is_none() {
            return Ok(None);
        }
        const ALL: &str = "a GitHub App needs `KONDUCTOR_GITHUB_APP_ID`, \
             `KONDUCTOR_GITHUB_INSTALLATION_ID` and the private key in \
             `KONDUCTOR_GITHUB_APP_KEY` or `KONDUCTOR_GITHUB_APP_KEY_FILE`";
        let missing = |name: &str| Error::input(format!("`{name}` is not set; {ALL}"));
        let app_id = app_id.ok_or_else(|| missing("KONDUCTOR_GITHUB_APP_ID"))?;
        let installation_id =
            installation_id.ok_or_else(|| missing("KONDUCTOR_GITHUB_INSTALLATION_ID"))?;
        for (name, v) in [
            ("KONDUCTOR_GITHUB_APP_ID", &app_id),
            ("KONDUCTOR_GITHUB_INSTALLATION_ID", &installation_id),
        ] {
            if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::input(format!(
                    "`{name}` must be a number (the id GitHub shows), not `{}`",
                    crate::git::store::redact_userinfo(&v.chars().take(40).collect::<String>())
                )));
            }
        }
        let key_pem = match (key, key_file) {
            (Some(_), Some(_)) => {
                return Err(Error::input(
                    "both `KONDUCTOR_GITHUB_APP_KEY` and `KONDUCTOR_GITHUB_APP_KEY_FILE` are set; set one",
                ))
            }
            (Some(k), None) => k,
            (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| Error::Io {
                what: format!(
                    "cannot read the GitHub App private key `{path}` (`KONDUCTOR_GITHUB_APP_KEY_FILE`)"
                ),
                source: e,
            })?,
            (None, None) => return Err(missing("KONDUCTOR_GITHUB_APP_KEY")),
        };
        let api = var("KONDUCTOR_GITHUB_API").unwrap_or_else(|| DEFAULT_API.to_string());
        let lower = api.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(Error::input(format!(
                "`KONDUCTOR_GITHUB_API` must be an http(s):// URL, not `{}`",
                crate::git::store::redact_userinfo(&api)
            )));
        }
        Ok(Some(AppCredentials {
            app_id,
            installation_id,
            key_pem,
            api: api.trim_end_matches('/').to_string(),
        }))
    }

    /// Credentials given directly (tests, embedders).
    pub fn new(app_id: &str, installation_id: &str, key_pem: &str, api: &str) -> AppCredentials {
        AppCredentials {
            app_id: app_id.to_string(),
            installation_id: installation_id.to_string(),
            key_pem: key_pem.to_string(),
            api: api.trim_end_matches('/').to_string(),
        }
    }

    /// The JWT that authenticates as the App, valid from a minute ago for nine minutes.
    pub fn jwt(&self, now: i64) -> Result<String> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iat: i64,
            exp: i64,
            iss: &'a str,
        }
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(self.key_pem.as_bytes()).map_err(|e| {
                Error::Auth(format!(
                    "the GitHub App private key is not an RSA private key in PEM format ({e}); \
                 give the `.pem` file GitHub generated for App `{}`",
                    self.app_id
                ))
            })?;
        let claims = Claims {
            iat: now - 60,
            exp: now + 540,
            iss: &self.app_id,
        };
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .map_err(|e| {
            Error::Auth(format!(
                "cannot sign a JWT with the GitHub App private key of App `{}`: {e}",
                self.app_id
            ))
        })?;
        remember_secret(&jwt);
        Ok(jwt)
    }
}

/// Secrets this process made (JWTs, tokens), removed by [`redact`].
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Tokens minted by this process: (api, app id, installation id) → token.
static CACHE: Mutex<BTreeMap<(String, String, String), InstallationToken>> =
    Mutex::new(BTreeMap::new());

/// Remember a secret this process holds (a token, a hook URL) so that [`redact`] removes it
/// from every error and log line.
pub fn remember_secret(s: &str) {
    if s.is_empty() {
        return;
    }
    let mut v = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// `text` with every JWT and installation token this process made replaced by `***`.
pub fn redact(text: &str) -> String {
    let v = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in v.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An installation token for `app`: the one minted earlier in this process while it has
/// more than five minutes left, else a new one.
pub fn installation_token(app: &AppCredentials) -> Result<InstallationToken> {
    let key = (
        app.api.clone(),
        app.app_id.clone(),
        app.installation_id.clone(),
    );
    let now = unix_now();
    {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cache
            .get(&key)
            .filter(|t| t.expires_at - now > REFRESH_MARGIN)
        {
            return Ok(t.clone());
        }
    }
    let t = mint(app, now)?;
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, t.clone());
    Ok(t)
}

/// Mint a new installation token (one JWT, one request), without the cache.
pub fn mint(app: &AppCredentials, now: i64) -> Result<InstallationToken> {
    let jwt = app.jwt(now)?;
    let url = format!(
        "{}/app/installations/{}/access_tokens",
        app.api, app.installation_id
    );
    let shown = crate::git::store::redact_userinfo(&url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("konductor/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {jwt}"))
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send_empty();
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Err(Error::Remote(format!(
                "cannot reach the GitHub API at `{shown}` to mint an installation token: {}",
                redact(&crate::git::store::redact_userinfo(&e.to_string()))
            )))
        }
    };
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    let said = json
        .get("message")
        .and_then(serde_json::Value::as_str)
        .map(|m| {
            let m: String = m.chars().filter(|c| !c.is_control()).take(200).collect();
            format!(": {}", redact(&m))
        })
        .unwrap_or_default();
    match status {
        200 | 201 => {}
        401 | 403 | 404 => {
            return Err(Error::Auth(format!(
                "the GitHub API at `{shown}` refused to mint an installation token for App `{}`, \
                 installation `{}` (HTTP {status}{said}); check `KONDUCTOR_GITHUB_APP_ID`, \
                 `KONDUCTOR_GITHUB_INSTALLATION_ID` and that the private key is the App's",
                app.app_id, app.installation_id
            )))
        }
        _ => {
            return Err(Error::Remote(format!(
                "the GitHub API at `{shown}` answered HTTP {status}{said} when asked for an installation token"
            )))
        }
    }
    let Some(token) = json
        .get("token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Err(Error::Remote(format!(
            "the GitHub API at `{shown}` answered HTTP {status} without a `token`"
        )));
    };
    remember_secret(token);
    let expires_at = json
        .get("expires_at")
        .and_then(serde_json::Value::as_str)
        .and_then(crate::model::time::parse_rfc3339)
        .unwrap_or(now + 3600);
    Ok(InstallationToken {
        token: token.to_string(),
        expires_at,
    })
}
