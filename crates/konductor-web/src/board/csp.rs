//! The page's own style and script, and the Content-Security-Policy that admits exactly
//! them, by hash.

use base64ct::{Base64, Encoding as _};
use sha2::{Digest as _, Sha256};

/// The page's style sheet, inlined verbatim (its hash is in the CSP).
pub(super) const STYLE: &str = include_str!("board.css");

/// The page's script, inlined verbatim (its hash is in the CSP). The page reads fine
/// without it.
pub(super) const SCRIPT: &str = include_str!("board.js");

/// The page's Content-Security-Policy: nothing may load; only this page's own style and
/// script run (by hash, so injected markup could not run script even if escaping failed).
pub(super) fn csp() -> String {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; img-src 'none'; \
         font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'",
        hash(STYLE),
        hash(SCRIPT)
    )
}

/// A CSP hash source's value: the base64 of the SHA-256 of `text`.
pub(super) fn hash(text: &str) -> String {
    Base64::encode_string(&Sha256::digest(text.as_bytes()))
}
