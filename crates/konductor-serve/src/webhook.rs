//! Webhooks: who sent one (GitHub, GitLab, Gitea/Forgejo), whether it is signed with the
//! shared secret, and which tag of which repository it names. Pure: no I/O, no clock.
//!
//! The payload shapes (only the fields read here):
//! - GitHub `push`: `ref` = `refs/tags/NAME`, `created`, `deleted`, `repository.full_name`,
//!   `repository.clone_url`, `repository.ssh_url`; `create`: `ref` = `NAME`,
//!   `ref_type` = `tag`, `repository` as for `push`. Signed by `X-Hub-Signature-256:
//!   sha256=<hex HMAC-SHA256 of the body>`; the delivery id is `X-GitHub-Delivery`.
//! - GitLab `Tag Push Hook`: `object_kind` = `tag_push`, `ref` = `refs/tags/NAME`,
//!   `project.path_with_namespace`, `project.git_http_url`, `project.git_ssh_url`. The
//!   secret comes as is in `X-Gitlab-Token`; the delivery id is `Idempotency-Key` (the same
//!   on retries), else `X-Gitlab-Event-UUID`.
//! - Gitea and Forgejo `push` and `create`: GitHub's shapes; signed by
//!   `X-Gitea-Signature` / `X-Forgejo-Signature` (hex HMAC-SHA256, no prefix); the
//!   delivery id is `X-Gitea-Delivery` / `X-Forgejo-Delivery`.

use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

/// Which forge sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// GitHub (`X-GitHub-Event`).
    GitHub,
    /// GitLab (`X-Gitlab-Event`).
    GitLab,
    /// Gitea (`X-Gitea-Event`).
    Gitea,
    /// Forgejo (`X-Forgejo-Event`).
    Forgejo,
}

impl Source {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::GitHub => "github",
            Source::GitLab => "gitlab",
            Source::Gitea => "gitea",
            Source::Forgejo => "forgejo",
        }
    }
}

/// The headers a webhook is judged by (names lower-case), already read.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// Every header (lower-case name, value); values that are not text are left out.
    pub all: Vec<(String, String)>,
}

impl Headers {
    /// The first value of header `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Who sent it and what event it is, from the headers. Gitea and Forgejo also send
/// GitHub's headers, so they are recognised first.
pub fn identify(h: &Headers) -> Option<(Source, String)> {
    for (name, src) in [
        ("x-forgejo-event", Source::Forgejo),
        ("x-gitea-event", Source::Gitea),
        ("x-gitlab-event", Source::GitLab),
        ("x-github-event", Source::GitHub),
    ] {
        if let Some(ev) = h.get(name) {
            return Some((src, ev.to_string()));
        }
    }
    None
}

/// The delivery id, unique per delivery: what a replay repeats.
pub fn delivery_id(src: Source, h: &Headers) -> Option<&str> {
    // GitLab keeps `Idempotency-Key` across the retries of one event (newer versions);
    // `X-Gitlab-Event-UUID` names the event.
    if src == Source::GitLab {
        if let Some(k) = h.get("idempotency-key").filter(|v| !v.is_empty()) {
            return Some(k);
        }
    }
    let name = match src {
        Source::GitHub => "x-github-delivery",
        Source::GitLab => "x-gitlab-event-uuid",
        Source::Gitea => "x-gitea-delivery",
        Source::Forgejo => "x-forgejo-delivery",
    };
    h.get(name).filter(|v| !v.is_empty())
}

/// Whether the webhook carries the secret: an HMAC-SHA256 of the body (GitHub, Gitea,
/// Forgejo) or the secret itself (GitLab), compared in constant time.
pub fn verify(src: Source, h: &Headers, body: &[u8], secret: &str) -> bool {
    let hex_sig = match src {
        Source::GitHub => h
            .get("x-hub-signature-256")
            .and_then(|v| v.strip_prefix("sha256=")),
        Source::Gitea => h.get("x-gitea-signature"),
        Source::Forgejo => h
            .get("x-forgejo-signature")
            .or_else(|| h.get("x-gitea-signature")),
        Source::GitLab => {
            let Some(token) = h.get("x-gitlab-token") else {
                return false;
            };
            // Compare HMACs of both: constant time whatever the lengths.
            let a = mac(secret.as_bytes(), token.as_bytes());
            return a
                .verify_slice(
                    &mac(secret.as_bytes(), secret.as_bytes())
                        .finalize()
                        .into_bytes(),
                )
                .is_ok();
        }
    };
    let Some(sig) = hex_sig.and_then(|s| base16ct::mixed::decode_vec(s.trim()).ok()) else {
        return false;
    };
    mac(secret.as_bytes(), body).verify_slice(&sig).is_ok()
}

fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m
}

/// The HMAC-SHA256 of `body` with `secret`, in lower-case hex (what a forge signs with).
pub fn sign(secret: &str, body: &[u8]) -> String {
    base16ct::lower::encode_string(&mac(secret.as_bytes(), body).finalize().into_bytes())
}

/// What a signed webhook is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A tag was pushed or created.
    Tag {
        /// The tag name, without `refs/tags/`.
        name: String,
        /// What names the repository in the payload: `owner/name` and clone URLs.
        repository: Vec<String>,
    },
    /// An event Konductor does not act on (a branch push, `ping`, an issue…), and why.
    Ignored(String),
}

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Read the event from a verified body.
pub fn parse(src: Source, event: &str, body: &[u8]) -> Result<Event, Malformed> {
    let kind = match (src, event) {
        (Source::GitLab, "Tag Push Hook") => "tag_push",
        (Source::GitLab, _) => return Ok(Event::Ignored(format!("event `{event}`"))),
        (_, "push") => "push",
        (_, "create") => "create",
        _ => return Ok(Event::Ignored(format!("event `{event}`"))),
    };
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Malformed(format!("invalid JSON: {e}")))?;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let name = match kind {
        "create" => {
            if s("/ref_type").as_deref() != Some("tag") {
                return Ok(Event::Ignored("a branch was created".into()));
            }
            s("/ref").ok_or_else(|| Malformed("no `ref`".into()))?
        }
        _ => {
            let r = s("/ref").ok_or_else(|| Malformed("no `ref`".into()))?;
            match r.strip_prefix("refs/tags/") {
                Some(n) => n.to_string(),
                None => return Ok(Event::Ignored(format!("`{r}` is not a tag"))),
            }
        }
    };
    if v.pointer("/deleted").and_then(Value::as_bool) == Some(true) {
        return Ok(Event::Ignored(format!("tag `{name}` was deleted")));
    }
    let mut repository = Vec::new();
    for p in [
        "/repository/full_name",
        "/project/path_with_namespace",
        "/repository/clone_url",
        "/repository/ssh_url",
        "/repository/html_url",
        "/project/git_http_url",
        "/project/git_ssh_url",
        "/project/web_url",
    ] {
        if let Some(x) = s(p).filter(|x| !x.is_empty()) {
            repository.push(x);
        }
    }
    if repository.is_empty() {
        return Err(Malformed("no repository in the payload".into()));
    }
    Ok(Event::Tag { name, repository })
}

/// `owner/name` of a remote URL or path (`https://host/owner/name.git`,
/// `git@host:owner/name.git`, `/srv/git/owner/name.git`), lower-case: what a payload's
/// repository is matched against.
pub fn repo_slug(url: &str) -> Option<String> {
    let u = url.trim().trim_end_matches('/');
    let u = u.strip_suffix(".git").unwrap_or(u);
    // scp-like `user@host:path`, or a URL's path after the host.
    let path = if let Some((_, rest)) = u.split_once("://") {
        rest.split_once('/').map(|(_, p)| p).unwrap_or("")
    } else if let Some((host, rest)) = u.split_once(':') {
        if host.contains('/') {
            u
        } else {
            rest
        }
    } else {
        u
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [.., owner, name] => Some(format!("{owner}/{name}").to_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(pairs: &[(&str, &str)]) -> Headers {
        Headers {
            all: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn github_signature_is_checked_over_the_raw_body() {
        let body = br#"{"ref":"refs/tags/release=1.0=a.1=success"}"#;
        let good = format!("sha256={}", sign("s3cret", body));
        let h = hs(&[("x-hub-signature-256", &good)]);
        assert!(verify(Source::GitHub, &h, body, "s3cret"));
        assert!(!verify(Source::GitHub, &h, body, "other"));
        assert!(!verify(Source::GitHub, &h, b"{}", "s3cret"));
        let bare = hs(&[("x-hub-signature-256", &good[7..])]);
        assert!(!verify(Source::GitHub, &bare, body, "s3cret"));
        assert!(!verify(Source::GitHub, &hs(&[]), body, "s3cret"));
        let junk = hs(&[("x-hub-signature-256", "sha256=zz")]);
        assert!(!verify(Source::GitHub, &junk, body, "s3cret"));
    }

    #[test]
    fn gitea_and_gitlab_secrets() {
        let body = b"{}";
        let h = hs(&[("x-gitea-signature", &sign("k", body))]);
        assert!(verify(Source::Gitea, &h, body, "k"));
        assert!(verify(Source::Forgejo, &h, body, "k"));
        assert!(!verify(Source::Gitea, &h, body, "K"));
        assert!(verify(
            Source::GitLab,
            &hs(&[("x-gitlab-token", "k")]),
            body,
            "k"
        ));
        assert!(!verify(
            Source::GitLab,
            &hs(&[("x-gitlab-token", "k2")]),
            body,
            "k"
        ));
        assert!(!verify(Source::GitLab, &hs(&[]), body, "k"));
    }

    #[test]
    fn gitlab_retries_keep_their_idempotency_key() {
        let h = hs(&[("x-gitlab-event-uuid", "e1"), ("idempotency-key", "k1")]);
        assert_eq!(delivery_id(Source::GitLab, &h), Some("k1"));
        let h = hs(&[("x-gitlab-event-uuid", "e1")]);
        assert_eq!(delivery_id(Source::GitLab, &h), Some("e1"));
        let h = hs(&[("x-github-delivery", "g1"), ("idempotency-key", "k1")]);
        assert_eq!(delivery_id(Source::GitHub, &h), Some("g1"));
    }

    #[test]
    fn forges_are_told_apart_gitea_first() {
        let h = hs(&[("x-github-event", "push"), ("x-gitea-event", "push")]);
        assert_eq!(identify(&h), Some((Source::Gitea, "push".into())));
        let h = hs(&[("x-gitlab-event", "Tag Push Hook")]);
        assert_eq!(identify(&h), Some((Source::GitLab, "Tag Push Hook".into())));
        assert_eq!(identify(&hs(&[("content-type", "x")])), None);
    }

    #[test]
    fn payloads_name_the_tag_and_the_repository() {
        let push = br#"{"ref":"refs/tags/release=2.0=a.1=success","created":true,"deleted":false,
            "repository":{"full_name":"acme/app","clone_url":"https://h/acme/app.git"}}"#;
        assert_eq!(
            parse(Source::GitHub, "push", push),
            Ok(Event::Tag {
                name: "release=2.0=a.1=success".into(),
                repository: vec!["acme/app".into(), "https://h/acme/app.git".into()]
            })
        );
        let create =
            br#"{"ref":"release=2.0","ref_type":"tag","repository":{"full_name":"acme/app"}}"#;
        assert!(
            matches!(parse(Source::GitHub, "create", create), Ok(Event::Tag { name, .. }) if name == "release=2.0")
        );
        let branch = br#"{"ref":"refs/heads/main","repository":{"full_name":"acme/app"}}"#;
        assert!(matches!(
            parse(Source::GitHub, "push", branch),
            Ok(Event::Ignored(_))
        ));
        let gl = br#"{"object_kind":"tag_push","ref":"refs/tags/release=3.0","project":{"path_with_namespace":"g/sub/app"}}"#;
        assert!(
            matches!(parse(Source::GitLab, "Tag Push Hook", gl), Ok(Event::Tag { repository, .. }) if repository == vec!["g/sub/app".to_string()])
        );
        assert!(matches!(
            parse(Source::GitHub, "issues", b"not json"),
            Ok(Event::Ignored(_))
        ));
        assert!(parse(Source::GitHub, "push", b"{not json").is_err());
        assert!(parse(Source::GitHub, "push", br#"{"ref":"refs/tags/x"}"#).is_err());
    }

    #[test]
    fn slugs_of_remote_urls() {
        for (url, want) in [
            ("https://github.com/Acme/App.git", Some("acme/app")),
            ("git@github.com:acme/app.git", Some("acme/app")),
            ("ssh://git@host:22/acme/app", Some("acme/app")),
            ("git://127.0.0.1:9418/srv/acme/app.git", Some("acme/app")),
            ("/tmp/x/acme/app.git", Some("acme/app")),
            ("https://gitlab.com/g/sub/app", Some("sub/app")),
            ("app.git", None),
        ] {
            assert_eq!(repo_slug(url).as_deref(), want, "{url}");
        }
    }
}
