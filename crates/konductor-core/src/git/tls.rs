//! libgit2 without the CA bundle, for a process that speaks no TLS.
//!
//! git2 initialises libgit2 on its first call, and libgit2 (built with OpenSSL) creates its
//! one TLS context there, with `SSL_CTX_set_default_verify_paths`: OpenSSL parses the whole
//! CA bundle (`SSL_CERT_FILE`, which git2 points at the system's bundle through
//! `openssl-probe`) whether or not the process will ever open a TLS connection. That was 23
//! ms of a 59 ms `locomotive set-step-state` over a path (docs/architecture.md). libgit2
//! can't defer it (only its dynamically loaded OpenSSL does), so a process whose remote
//! can't lead to TLS initialises libgit2 with `SSL_CERT_FILE=/dev/null` and puts the
//! variable back at once: the context then has no roots from a file (the lazy
//! `SSL_CERT_DIR` lookup stays), and every other TLS user (the GitHub App token request,
//! the git CLI) sees the environment it had.

/// Whether libgit2 could open a TLS connection for `url`: https, and http too (a server may
/// redirect it to https). Paths, `file://`, `git://` and ssh can't.
pub fn may_use_tls(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("http" | "https"))
}

/// Initialise libgit2 for a process whose only remote is `url`: without loading the CA
/// bundle when that remote can't lead to TLS ([`may_use_tls`]), as usual otherwise. Call
/// it first, before any other git2 call and before starting threads (it sets an
/// environment variable for the duration of the initialisation); afterwards, or a second
/// time, it changes nothing.
pub fn init_libgit2_for(url: &str) {
    #[cfg(unix)]
    if !may_use_tls(url) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            const VAR: &str = "SSL_CERT_FILE";
            let saved = std::env::var_os(VAR);
            std::env::set_var(VAR, "/dev/null");
            super::store::init_libgit2();
            match saved {
                Some(v) => std::env::set_var(VAR, v),
                None => std::env::remove_var(VAR),
            }
        });
    }
    super::store::init_libgit2();
}

#[cfg(test)]
mod tests {
    use super::may_use_tls;

    #[test]
    fn only_http_and_https_remotes_may_use_tls() {
        for url in ["https://h/r.git", "HTTPS://h/r", "http://h:8080/r"] {
            assert!(may_use_tls(url), "{url}");
        }
        for url in [
            "/srv/r.git",
            "file:///srv/r.git",
            "git://127.0.0.1:9418/r.git",
            "ssh://git@h/r.git",
            "git@h:r.git",
            "relative/https://x",
        ] {
            assert!(!may_use_tls(url), "{url}");
        }
    }
}
