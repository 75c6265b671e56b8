//! SSH signatures of the tags konductor and locomotive write, in git's own format.
//!
//! A signed tag is the tag object with an armored SSHSIG signature appended to its message,
//! exactly what `git tag -s` writes with `gpg.format=ssh`, so `git tag -v` (with
//! `gpg.ssh.allowedSignersFile`) checks the tags written here, and [`verify_tag_object`] checks
//! the tags git signed. Signing runs `ssh-keygen -Y sign` like git does (so the user's agent
//! and passphrase prompts work). Verifying runs in-process with the RustCrypto `ssh-key` crate
//! for Ed25519 keys and the allowed-signers lines it fully understands, and falls back to
//! `ssh-keygen -Y find-principals` / `-Y verify` for everything else (other key types,
//! certificates and `cert-authority`, times in local time, quoting): the two agree on every
//! case the tests cover, and the in-process path is some 350 times faster (see
//! `docs/architecture.md`). Parsing the signature ([`parse_sshsig`]) and splitting a tag
//! ([`split_signed_tag`]) are done here, on the `sha2` and `base64ct` crates.
//!
//! The allowed signers file has `ssh-keygen`'s format (`ALLOWED SIGNERS` in ssh-keygen(1)):
//! `signer@example.com ssh-ed25519 AAAA…`, one key a line, with optional options such as
//! `namespaces="git"` or `valid-before="20300101"`. As in git, validity periods are checked at
//! the time of the tagger line, not at the time of the check.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// The signature namespace git uses for commits and tags (`ssh-keygen -n git`).
pub const NAMESPACE: &str = "git";

const BEGIN_SSH: &str = "-----BEGIN SSH SIGNATURE-----";
const END_SSH: &str = "-----END SSH SIGNATURE-----";

/// The lines git takes for the start of a signature (`gpg-interface.c`), with their format.
const SIGNATURE_MARKERS: [(&str, &str); 4] = [
    ("-----BEGIN PGP SIGNATURE-----", "openpgp"),
    ("-----BEGIN PGP MESSAGE-----", "openpgp"),
    ("-----BEGIN SIGNED MESSAGE-----", "x509"),
    (BEGIN_SSH, "ssh"),
];

/// The SSHSIG magic preamble (PROTOCOL.sshsig).
const MAGIC: &[u8] = b"SSHSIG";
/// The only SSHSIG version there is.
const SIG_VERSION: u32 = 1;
/// `ssh-keygen` wraps the base64 body at this width.
const ARMOR_WIDTH: usize = 70;

/// A parsed SSHSIG armored signature (`-----BEGIN SSH SIGNATURE-----` … `-----END SSH SIGNATURE-----`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSig {
    /// The signer's public key in SSH wire format (the blob of an `authorized_keys` line).
    pub public_key: Vec<u8>,
    /// The key type named at the start of [`public_key`](Self::public_key), e.g. `ssh-ed25519`.
    pub key_type: String,
    /// The namespace the signature was made for (`git` for git's signatures).
    pub namespace: String,
    /// The hash the message was signed through: `sha256` or `sha512`.
    pub hash_algorithm: String,
    /// The signature blob in SSH wire format (algorithm name, then the signature proper).
    pub signature: Vec<u8>,
}

impl SshSig {
    /// The signer's key fingerprint, `SHA256:…` as `ssh-keygen -l` shows it.
    pub fn fingerprint(&self) -> String {
        key_fingerprint(&self.public_key)
    }

    /// The armored form, byte for byte what `ssh-keygen -Y sign` writes (70-column base64,
    /// trailing newline). [`key_type`](Self::key_type) is not written: it is read back from
    /// the key.
    pub fn to_armored(&self) -> String {
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&SIG_VERSION.to_be_bytes());
        put_string(&mut blob, &self.public_key);
        put_string(&mut blob, self.namespace.as_bytes());
        put_string(&mut blob, b"");
        put_string(&mut blob, self.hash_algorithm.as_bytes());
        put_string(&mut blob, &self.signature);
        let body = base64_encode(&blob, true);
        let mut out = String::with_capacity(body.len() + body.len() / ARMOR_WIDTH + 64);
        out.push_str(BEGIN_SSH);
        out.push('\n');
        for line in body.as_bytes().chunks(ARMOR_WIDTH) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(END_SSH);
        out.push('\n');
        out
    }
}

/// What signing or verifying can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The tag carries no signature at all.
    #[error("tag is not signed")]
    Unsigned,
    /// The tag is signed, but not with SSH (OpenPGP or X.509).
    #[error(
        "tag is signed with an unsupported format ({format}): only ssh signatures are supported"
    )]
    UnsupportedFormat {
        /// `openpgp` or `x509`, git's names.
        format: &'static str,
    },
    /// The signature block is not a well-formed SSHSIG signature.
    #[error("malformed ssh signature: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The signature was made for another purpose than git's (`ssh-keygen -n`).
    #[error("signature by key {fingerprint} is for namespace `{found}`, not `{expected}`")]
    WrongNamespace {
        /// The signer's key fingerprint.
        fingerprint: String,
        /// The namespace required (`git`).
        expected: String,
        /// The namespace the signature names.
        found: String,
    },
    /// The signer's key is not one of the allowed signers (or not at the tag's time).
    #[error("signature by key {fingerprint} is not in allowed signers `{}`{}", .path.display(), detail_suffix(.detail))]
    NotAllowed {
        /// The signer's key fingerprint.
        fingerprint: String,
        /// The allowed signers file.
        path: PathBuf,
        /// What `ssh-keygen` said beyond "no principal matched", e.g. that the key expired.
        detail: Option<String>,
    },
    /// The key is allowed, but the signature does not match the payload.
    #[error("bad signature by key {fingerprint} ({principal}): {detail}")]
    BadSignature {
        /// The signer's key fingerprint.
        fingerprint: String,
        /// The principal(s) the key is allowed as.
        principal: String,
        /// What `ssh-keygen` said.
        detail: String,
    },
    /// A tag object that already carries a signature was given to be signed.
    #[error("tag object is already signed")]
    AlreadySigned,
    /// `ssh-keygen` is not on `PATH`.
    #[error("`ssh-keygen` not found: install openssh-client")]
    SshKeygenMissing,
    /// `ssh-keygen` failed (or is too old to sign).
    #[error("`ssh-keygen -Y {action}` failed: {detail}")]
    SshKeygen {
        /// The `-Y` action: `sign`, `find-principals` or `verify`.
        action: &'static str,
        /// What it said.
        detail: String,
    },
    /// The signing key file cannot be read.
    #[error("cannot read signing key `{}`: {source}", .path.display())]
    KeyUnreadable {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The allowed signers file cannot be read.
    #[error("cannot read allowed signers `{}`: {source}", .path.display())]
    AllowedSignersUnreadable {
        /// The allowed signers file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Some other local I/O failed (temporary file, pipe to `ssh-keygen`).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(" ({d})"),
        None => String::new(),
    }
}

fn malformed(reason: impl Into<String>) -> SignError {
    SignError::Malformed {
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Parse the armored block; never panics on any input.
///
/// Surrounding blank lines and trailing whitespace on lines (`\r`) are tolerated; otherwise
/// the first line must be `-----BEGIN SSH SIGNATURE-----`, the last
/// `-----END SSH SIGNATURE-----`, and every line between them strict, canonical base64 of a
/// version-1 SSHSIG blob with nothing after its signature.
pub fn parse_sshsig(armored: &str) -> Result<SshSig, SignError> {
    let mut lines = armored
        .split('\n')
        .map(|l| l.trim_end_matches([' ', '\t', '\r']))
        .skip_while(|l| l.is_empty())
        .collect::<Vec<_>>();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    match lines.first() {
        Some(&first) if first == BEGIN_SSH => {}
        Some(first) => {
            if let Some(format) = marker_format(first.as_bytes()).filter(|f| *f != "ssh") {
                return Err(SignError::UnsupportedFormat { format });
            }
            return Err(malformed(format!("the first line is not `{BEGIN_SSH}`")));
        }
        None => return Err(malformed("empty signature")),
    }
    if lines.len() < 2 || lines[lines.len() - 1] != END_SSH {
        return Err(malformed(format!("the last line is not `{END_SSH}`")));
    }
    let body_lines = &lines[1..lines.len() - 1];
    if body_lines.is_empty() {
        return Err(malformed("no base64 between the armor lines"));
    }
    let mut body = Vec::new();
    for (i, line) in body_lines.iter().enumerate() {
        if line.is_empty() {
            return Err(malformed(format!("blank line {} inside the armor", i + 2)));
        }
        body.extend_from_slice(line.as_bytes());
    }
    let blob = base64_decode(&body).map_err(malformed)?;
    parse_sshsig_blob(&blob)
}

/// Parse the binary SSHSIG blob (PROTOCOL.sshsig).
fn parse_sshsig_blob(blob: &[u8]) -> Result<SshSig, SignError> {
    let mut r = Reader(blob);
    if r.take(MAGIC.len()) != Some(MAGIC) {
        return Err(malformed("missing the `SSHSIG` preamble"));
    }
    let version = r
        .u32()
        .ok_or_else(|| malformed("truncated before the version"))?;
    if version != SIG_VERSION {
        return Err(malformed(format!("unsupported version {version}")));
    }
    let public_key = r.field("public key")?;
    let namespace = r.field("namespace")?;
    let _reserved = r.field("reserved field")?;
    let hash_algorithm = r.field("hash algorithm")?;
    let signature = r.field("signature")?;
    if !r.0.is_empty() {
        return Err(malformed(format!(
            "{} bytes of trailing data after the signature",
            r.0.len()
        )));
    }

    let key_type = Reader(public_key)
        .string()
        .and_then(ascii_name)
        .ok_or_else(|| malformed("the public key does not start with a key type"))?;
    let namespace = text(namespace).ok_or_else(|| malformed("the namespace is not text"))?;
    let hash_algorithm =
        text(hash_algorithm).ok_or_else(|| malformed("the hash algorithm is not text"))?;
    if hash_algorithm != "sha256" && hash_algorithm != "sha512" {
        return Err(malformed(format!(
            "unsupported hash algorithm `{}`",
            hash_algorithm.escape_debug()
        )));
    }
    if Reader(signature).string().and_then(ascii_name).is_none() {
        return Err(malformed(
            "the signature does not start with an algorithm name",
        ));
    }
    Ok(SshSig {
        public_key: public_key.to_vec(),
        key_type,
        namespace,
        hash_algorithm,
        signature: signature.to_vec(),
    })
}

/// A bounds-checked reader of SSH wire-format data.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An SSH `string`: uint32 length, then that many bytes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    fn field(&mut self, name: &str) -> Result<&'a [u8], SignError> {
        self.string()
            .ok_or_else(|| malformed(format!("truncated {name}")))
    }
}

/// A UTF-8 string without NUL (OpenSSH reads these fields as C strings).
fn text(b: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(b).ok()?;
    (!s.contains('\0')).then(|| s.to_string())
}

/// An algorithm or key type name: non-empty printable ASCII.
fn ascii_name(b: &[u8]) -> Option<String> {
    let ok = !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic());
    ok.then(|| String::from_utf8_lossy(b).into_owned())
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Fields longer than 4 GiB cannot be expressed; nothing here makes one.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The format of a line that starts a signature, if it does (git's `get_format_by_sig`).
fn marker_format(line: &[u8]) -> Option<&'static str> {
    SIGNATURE_MARKERS
        .iter()
        .find(|(m, _)| line.starts_with(m.as_bytes()))
        .map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------------
// Tag objects

/// Split a raw git tag object (bytes as stored in the odb) into the signed payload and the
/// armored signature, the way git's `parse_signature` does.
///
/// The signature starts at the last line that begins with a signature marker (SSH, but also
/// OpenPGP and X.509 ones: [`verify`] reports those as an unsupported format) and runs to the
/// end of the object. `gpgsig`/`gpgsig-sha256` headers (signatures over the object in the
/// other hash, in repositories with a compatibility hash) are dropped from the payload like
/// git's `remove_signature` does. Without any marker the whole object is the payload.
pub fn split_signed_tag(raw: &[u8]) -> (Vec<u8>, Option<String>) {
    let mut start = None;
    let mut pos = 0;
    while pos < raw.len() {
        if marker_format(&raw[pos..]).is_some() {
            start = Some(pos);
        }
        pos = match raw[pos..].iter().position(|&b| b == b'\n') {
            Some(eol) => pos + eol + 1,
            None => raw.len(),
        };
    }
    match start {
        None => (raw.to_vec(), None),
        Some(at) => {
            let payload = remove_gpgsig_headers(&raw[..at]);
            let signature = String::from_utf8_lossy(&raw[at..]).into_owned();
            (payload, Some(signature))
        }
    }
}

/// Drop `gpgsig` and `gpgsig-sha256` headers (with their continuation lines) from the header
/// part of an object.
fn remove_gpgsig_headers(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    let mut in_sig = false;
    let mut pos = 0;
    while pos < buf.len() {
        let next = buf[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |eol| pos + eol + 1);
        let line = &buf[pos..next];
        if in_sig && line.first() == Some(&b' ') {
            // continuation of a dropped header
        } else if line.starts_with(b"gpgsig ") || line.starts_with(b"gpgsig-sha256 ") {
            in_sig = true;
        } else if line.first() == Some(&b'\n') {
            // end of the headers: the message is kept whole
            out.extend_from_slice(&buf[pos..]);
            break;
        } else {
            in_sig = false;
            out.extend_from_slice(line);
        }
        pos = next;
    }
    out
}

/// Build a signed tag object's bytes, as `git tag -s` with `gpg.format=ssh` does: the unsigned
/// object (object/type/tag/tagger headers, blank line, message) with the armored signature of
/// all of it appended.
///
/// A message that does not end with a newline gets one first (git's message cleanup always
/// leaves one), so that the signature starts a line. An object that already carries a
/// signature (a marker line or a `gpgsig` header) is refused.
pub fn sign_tag_object(unsigned: &[u8], key: &Path) -> Result<Vec<u8>, SignError> {
    Keygen::default().sign_tag_object(unsigned, key)
}

/// Verify a raw tag object: [`split_signed_tag`] then [`verify`]. Returns the principal.
pub fn verify_tag_object(raw: &[u8], allowed_signers: &Path) -> Result<String, SignError> {
    Keygen::default().verify_tag_object(raw, allowed_signers)
}

// ---------------------------------------------------------------------------------------------
// ssh-keygen

/// Sign `payload` with the private key file `key` in namespace `git` (`ssh-keygen -Y sign -n
/// git -f KEY`, payload on standard input) and return the armored signature.
///
/// `key` may also be a public key whose private half is in the running `ssh-agent`, as
/// `ssh-keygen` allows. A passphrase-protected key makes `ssh-keygen` prompt on the terminal.
pub fn sign(payload: &[u8], key: &Path) -> Result<String, SignError> {
    Keygen::default().sign(payload, key)
}

/// Verify the armored signature of `payload` against an allowed signers file and return the
/// verified principal (e.g. an email), like `git tag -v` does: `ssh-keygen -Y find-principals`
/// gives the principals of the key, then `ssh-keygen -Y verify -n git -I PRINCIPAL` checks the
/// signature for each until one passes.
///
/// When the payload has a `tagger` line, its time is the verify time (`-Overify-time`), as in
/// git, so key validity periods apply to when the tag was written.
pub fn verify(payload: &[u8], armored: &str, allowed_signers: &Path) -> Result<String, SignError> {
    Keygen::default().verify(payload, armored, allowed_signers)
}

/// How to verify: the `ssh-keygen` to run (a parameter only so tests can name a missing
/// one), and whether the in-process path may answer first (off to measure or compare the
/// `ssh-keygen` path alone).
struct Keygen {
    program: OsString,
    in_process: bool,
}

impl Default for Keygen {
    fn default() -> Self {
        Keygen {
            program: OsString::from("ssh-keygen"),
            in_process: true,
        }
    }
}

impl Keygen {
    fn sign(&self, payload: &[u8], key: &Path) -> Result<String, SignError> {
        if let Err(source) = std::fs::metadata(key) {
            return Err(SignError::KeyUnreadable {
                path: key.to_path_buf(),
                source,
            });
        }
        let args: [&OsStr; 6] = [
            "-Y".as_ref(),
            "sign".as_ref(),
            "-n".as_ref(),
            NAMESPACE.as_ref(),
            "-f".as_ref(),
            key.as_os_str(),
        ];
        let out = self.run(&args, Some(payload))?;
        if !out.status.success() {
            return Err(SignError::SshKeygen {
                action: "sign",
                detail: keygen_detail(&out),
            });
        }
        // Like git: drop carriage returns, in case some build writes CRLF.
        let armored: String = String::from_utf8_lossy(&out.stdout)
            .chars()
            .filter(|&c| c != '\r')
            .collect();
        parse_sshsig(&armored).map_err(|e| SignError::SshKeygen {
            action: "sign",
            detail: format!("it wrote an unreadable signature: {e}"),
        })?;
        Ok(armored)
    }

    fn sign_tag_object(&self, unsigned: &[u8], key: &Path) -> Result<Vec<u8>, SignError> {
        let signed = split_signed_tag(unsigned).1.is_some();
        if signed || remove_gpgsig_headers(unsigned).len() != unsigned.len() {
            return Err(SignError::AlreadySigned);
        }
        let mut object = unsigned.to_vec();
        if !object.ends_with(b"\n") {
            object.push(b'\n');
        }
        let armored = self.sign(&object, key)?;
        object.extend_from_slice(armored.as_bytes());
        Ok(object)
    }

    fn verify_tag_object(&self, raw: &[u8], allowed: &Path) -> Result<String, SignError> {
        match split_signed_tag(raw) {
            (_, None) => Err(SignError::Unsigned),
            (payload, Some(armored)) => self.verify(&payload, &armored, allowed),
        }
    }

    fn verify(&self, payload: &[u8], armored: &str, allowed: &Path) -> Result<String, SignError> {
        if armored.trim().is_empty() {
            return Err(SignError::Unsigned);
        }
        let sig = parse_sshsig(armored)?;
        let fingerprint = sig.fingerprint();
        if sig.namespace != NAMESPACE {
            return Err(SignError::WrongNamespace {
                fingerprint,
                expected: NAMESPACE.to_string(),
                found: sig.namespace,
            });
        }
        if let Err(source) = std::fs::File::open(allowed) {
            return Err(SignError::AllowedSignersUnreadable {
                path: allowed.to_path_buf(),
                source,
            });
        }
        if self.in_process {
            if let Some(result) = verify_in_process(payload, armored, &fingerprint, allowed) {
                return result;
            }
        }
        let sig_file = TempFile::create(armored.as_bytes()).map_err(|source| SignError::Io {
            what: "cannot write the signature to a temporary file".to_string(),
            source,
        })?;
        let verify_time = payload_time(payload).map(|t| format!("-Overify-time={t}"));
        let mut common: Vec<&OsStr> = vec![
            "-f".as_ref(),
            allowed.as_os_str(),
            "-s".as_ref(),
            sig_file.path.as_os_str(),
        ];
        if let Some(t) = &verify_time {
            common.push(t.as_ref());
        }

        let mut args: Vec<&OsStr> = vec!["-Y".as_ref(), "find-principals".as_ref()];
        args.extend(&common);
        let found = self.run(&args, None)?;
        let stderr = String::from_utf8_lossy(&found.stderr);
        if stderr.contains("usage:") {
            return Err(SignError::SshKeygen {
                action: "find-principals",
                detail: "this ssh-keygen is too old: openssh 8.2p1 or later is needed".into(),
            });
        }
        let stdout = String::from_utf8_lossy(&found.stdout);
        let principals: Vec<&str> = stdout
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .collect();
        if !found.status.success() || principals.is_empty() {
            let detail = Some(keygen_detail(&found))
                .filter(|d| !d.is_empty() && d != "No principal matched.");
            return Err(SignError::NotAllowed {
                fingerprint,
                path: allowed.to_path_buf(),
                detail,
            });
        }

        let mut failures = Vec::new();
        for principal in &principals {
            let mut args: Vec<&OsStr> = vec![
                "-Y".as_ref(),
                "verify".as_ref(),
                "-n".as_ref(),
                NAMESPACE.as_ref(),
                "-I".as_ref(),
                principal.as_ref(),
            ];
            args.extend(&common);
            let out = self.run(&args, Some(payload))?;
            if out.status.success() && out.stdout.starts_with(b"Good") {
                return Ok(principal.to_string());
            }
            failures.push(keygen_detail(&out));
        }
        failures.dedup();
        Err(SignError::BadSignature {
            fingerprint,
            principal: principals.join(", "),
            detail: failures.join("; "),
        })
    }

    /// Run `ssh-keygen ARGS`, with `stdin` fed to it (or no input), and collect its output.
    fn run(&self, args: &[&OsStr], stdin: Option<&[u8]>) -> Result<Output, SignError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SignError::SshKeygenMissing
            } else {
                SignError::Io {
                    what: "cannot run `ssh-keygen`".to_string(),
                    source,
                }
            }
        })?;
        let io_err = |source| SignError::Io {
            what: "cannot talk to `ssh-keygen`".to_string(),
            source,
        };
        match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => std::thread::scope(|s| {
                // Feed stdin from another thread so a chatty child can't deadlock us.
                let writer = s.spawn(move || match pipe.write_all(data) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                });
                let out = child.wait_with_output().map_err(io_err)?;
                match writer.join() {
                    Ok(written) => written.map_err(io_err)?,
                    Err(_) => {
                        return Err(io_err(std::io::Error::other("stdin writer panicked")));
                    }
                }
                Ok(out)
            }),
            _ => child.wait_with_output().map_err(io_err),
        }
    }
}

/// `ssh-keygen`'s stderr (then stdout) in one line, without its progress chatter.
fn keygen_detail(out: &Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Signing data on standard input"))
        .collect();
    if lines.is_empty() {
        format!("exited with {}", out.status)
    } else {
        lines.join("; ")
    }
}

/// The tagger time of a tag payload, as `ssh-keygen`'s `verify-time` (`YYYYMMDDHHMMSSZ`).
fn payload_time(payload: &[u8]) -> Option<String> {
    let compact: String = crate::model::time::rfc3339(payload_secs(payload)?)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(format!("{compact}Z"))
}

/// The tagger time of a tag payload in seconds, if it has one `ssh-keygen` can take.
fn payload_secs(payload: &[u8]) -> Option<i64> {
    let headers = payload
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty());
    for line in headers {
        let Some(ident) = line.strip_prefix(b"tagger ") else {
            continue;
        };
        let after_email = &ident[ident.iter().rposition(|&b| b == b'>')? + 1..];
        let digits: Vec<u8> = after_email
            .iter()
            .skip_while(|&&b| b == b' ')
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        let secs: i64 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
        // ssh-keygen reads four-digit years only.
        if !(0..=crate::model::time::MAX_TIME).contains(&secs) {
            return None;
        }
        return Some(secs);
    }
    None
}

/// A private temporary file, removed on drop.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn create(contents: &[u8]) -> std::io::Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(
                ".konductor-sig-{}-{}-{}",
                std::process::id(),
                n,
                crate::model::time::now_nanos() % 1_000_000_000
            ));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut file) => {
                    // Made first, so a failed write still removes the file.
                    let temp = TempFile { path };
                    file.write_all(contents)?;
                    file.sync_all()?;
                    return Ok(temp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// In-process verification: ssh-keygen's rules for allowed signers, on the `ssh-key` crate

/// Verify like [`Keygen::verify`] does with `ssh-keygen`, without running it, or `None` when
/// only `ssh-keygen` can answer: a key type other than Ed25519 (certificates included), an
/// allowed signers file with a line this reader does not fully understand
/// ([`parse_allowed_signers`]), or a tagger time `ssh-keygen` refuses.
///
/// The steps and the messages are `ssh-keygen`'s (OpenSSH `sshsig.c`): the principals of the
/// first line with the signer's key that is valid at the verify time (`find-principals`),
/// then for each of them, the signature itself and a line that lists the principal, has the
/// key, permits namespace `git` and is valid at that time (`verify -I`). Times in messages
/// are shown in UTC where `ssh-keygen` shows local time.
fn verify_in_process(
    payload: &[u8],
    armored: &str,
    fingerprint: &str,
    allowed: &Path,
) -> Option<Result<String, SignError>> {
    let text = String::from_utf8(std::fs::read(allowed).ok()?).ok()?;
    let lines = parse_allowed_signers(&text)?;
    let sig = ssh_key::SshSig::from_pem(armored).ok()?;
    let key = sig.public_key();
    if !matches!(key, ssh_key::public::KeyData::Ed25519(_)) {
        return None;
    }
    let time = match payload_secs(payload) {
        Some(0) => return None, // ssh-keygen refuses a verify time of 0
        Some(t) => t.unsigned_abs(),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    };
    let path = allowed.display().to_string();

    let mut errors = Vec::new();
    let found = lines
        .iter()
        .find(|l| l.accepts(key, None, time, &path, &mut errors));
    let Some(found) = found else {
        errors.push("No principal matched.".to_string());
        let detail = Some(errors.join("; ")).filter(|d| d != "No principal matched.");
        return Some(Err(SignError::NotAllowed {
            fingerprint: fingerprint.to_string(),
            path: allowed.to_path_buf(),
            detail,
        }));
    };
    // ssh-keygen prints the line's principals up to the first empty one.
    let principals: Vec<&str> = found
        .principals
        .split(',')
        .take_while(|p| !p.is_empty())
        .collect();
    if principals.is_empty() {
        return None;
    }

    let signature_ok = ssh_key::PublicKey::from(key.clone())
        .verify(NAMESPACE, payload, &sig)
        .is_ok();
    let mut failures = Vec::new();
    for principal in &principals {
        let mut errors = Vec::new();
        if !signature_ok {
            errors.push("Signature verification failed: incorrect signature".to_string());
        } else if lines
            .iter()
            .any(|l| l.accepts(key, Some(principal), time, &path, &mut errors))
        {
            return Some(Ok(principal.to_string()));
        }
        errors.push("Could not verify signature.".to_string());
        failures.push(errors.join("; "));
    }
    failures.dedup();
    Some(Err(SignError::BadSignature {
        fingerprint: fingerprint.to_string(),
        principal: principals.join(", "),
        detail: failures.join("; "),
    }))
}

/// A line of an allowed signers file that names a key.
#[derive(Debug)]
struct AllowedLine {
    /// 1-based, for messages.
    number: usize,
    /// The principal patterns, comma-separated, as written.
    principals: String,
    /// `namespaces="…"`: the namespace patterns the key may sign for.
    namespaces: Option<String>,
    /// `valid-after="…"`, in seconds.
    valid_after: Option<u64>,
    /// `valid-before="…"`, in seconds.
    valid_before: Option<u64>,
    key: ssh_key::public::KeyData,
}

impl AllowedLine {
    /// Whether the line lets `key` sign, as `principal` in namespace `git` when one is given
    /// (`verify -I`), or as anyone in any namespace (`find-principals`). Why a line with the
    /// key does not is added to `errors`, in `ssh-keygen`'s words.
    fn accepts(
        &self,
        key: &ssh_key::public::KeyData,
        principal: Option<&str>,
        time: u64,
        path: &str,
        errors: &mut Vec<String>,
    ) -> bool {
        if principal.is_some_and(|p| match_pattern_list(p, &self.principals) != 1) {
            return false;
        }
        if &self.key != key {
            return false;
        }
        let n = self.number;
        if principal.is_some() {
            if let Some(namespaces) = &self.namespaces {
                if match_pattern_list(NAMESPACE, namespaces) != 1 {
                    errors.push(format!(
                        "{path}:{n}: key is not permitted for use in signature namespace \"{NAMESPACE}\""
                    ));
                    return false;
                }
            }
        }
        let show = |t: u64| {
            let mut s = crate::model::time::rfc3339(
                i64::try_from(t).unwrap_or(crate::model::time::MAX_TIME),
            );
            s.pop(); // the `Z`: ssh-keygen writes none
            s
        };
        if let Some(after) = self.valid_after.filter(|&a| time < a) {
            errors.push(format!(
                "{path}:{n}: key is not yet valid: verify time {} < valid-after {}",
                show(time),
                show(after)
            ));
            return false;
        }
        if let Some(before) = self.valid_before.filter(|&b| time > b) {
            errors.push(format!(
                "{path}:{n}: key has expired: verify time {} > valid-before {}",
                show(time),
                show(before)
            ));
            return false;
        }
        true
    }
}

/// The lines of an allowed signers file (`ALLOWED SIGNERS` in ssh-keygen(1)) that name a key,
/// or `None` if any line is beyond this reader, which then leaves the file to `ssh-keygen`.
///
/// Understood: blank and `#` lines; `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]` where
/// PRINCIPALS is unquoted, the key is one the `ssh-key` crate reads, and OPTIONS are
/// `namespaces="…"`, `valid-after="…"` and `valid-before="…"` (each at most once, times in
/// UTC: `YYYYMMDD[HHMM[SS]]` then `Z` or `UTC`). Not understood: `cert-authority`, any other
/// option, times in local time, quotes in principals, backslashes in values, malformed lines
/// (which `ssh-keygen` skips with an error message).
fn parse_allowed_signers(text: &str) -> Option<Vec<AllowedLine>> {
    if text.contains('\0') {
        return None;
    }
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_start_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line.find([' ', '\t', '\r']).unwrap_or(line.len());
        let (principals, rest) = line.split_at(end);
        if principals.contains('"') {
            return None;
        }
        let rest = rest.trim_start_matches([' ', '\t', '\r']);
        let first = rest.split([' ', '\t']).next().unwrap_or_default();
        let (options, key_text) = if known_key_type(first) {
            ("", rest)
        } else {
            let end = options_end(rest)?;
            (&rest[..end], rest[end..].trim_start_matches([' ', '\t']))
        };
        let mut fields = key_text.split([' ', '\t', '\r']);
        let (key_type, base64) = (fields.next()?, fields.next()?);
        if !known_key_type(key_type) {
            return None;
        }
        let key = ssh_key::PublicKey::from_openssh(&format!("{key_type} {base64}")).ok()?;
        let mut parsed = AllowedLine {
            number: i + 1,
            principals: principals.to_string(),
            namespaces: None,
            valid_after: None,
            valid_before: None,
            key: key.key_data().clone(),
        };
        parse_options(options, &mut parsed)?;
        out.push(parsed);
    }
    Some(out)
}

/// A key type the `ssh-key` crate names (not one it would only carry as opaque data).
fn known_key_type(name: &str) -> bool {
    name.parse::<ssh_key::Algorithm>()
        .is_ok_and(|a| !matches!(a, ssh_key::Algorithm::Other(_)))
}

/// Where the options field ends: the first blank outside double quotes.
fn options_end(rest: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' => return None,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Read `namespaces`, `valid-after` and `valid-before` (names in any case, like OpenSSH).
fn parse_options(mut opts: &str, line: &mut AllowedLine) -> Option<()> {
    while !opts.is_empty() {
        let (name, after) = opts.split_once('=')?;
        let value = after.strip_prefix('"')?;
        let close = value.find('"')?;
        let (value, rest) = (&value[..close], &value[close + 1..]);
        match name.to_ascii_lowercase().as_str() {
            "namespaces" if line.namespaces.is_none() => line.namespaces = Some(value.into()),
            "valid-after" if line.valid_after.is_none() => {
                line.valid_after = Some(utc_time(value)?)
            }
            "valid-before" if line.valid_before.is_none() => {
                line.valid_before = Some(utc_time(value)?)
            }
            _ => return None,
        }
        opts = match rest.strip_prefix(',') {
            Some("") => return None,
            Some(more) => more,
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    match (line.valid_after, line.valid_before) {
        (Some(a), Some(b)) if b <= a => None,
        _ => Some(()),
    }
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, then `Z` or `UTC`, in seconds after the
/// epoch; `None` for local times, impossible dates and the epoch itself (`ssh-keygen` reads
/// 0 as "no time").
fn utc_time(s: &str) -> Option<u64> {
    let digits = if s.len() > 1 && s[s.len() - 1..].eq_ignore_ascii_case("z") {
        &s[..s.len() - 1]
    } else if s.len() > 3 && s[s.len() - 3..].eq_ignore_ascii_case("utc") {
        &s[..s.len() - 3]
    } else {
        return None;
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |r: std::ops::Range<usize>| digits.get(r).unwrap_or("00");
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14)
    );
    let secs = crate::model::time::parse_rfc3339(&text)?;
    // Only dates that exist: what strptime would normalise is left to ssh-keygen.
    (secs > 0 && crate::model::time::rfc3339(secs) == text).then_some(secs.unsigned_abs())
}

/// OpenSSH's `match_pattern_list`: 1 if `s` matches a pattern of the comma-separated list, -1
/// if it matches a negated one (`!pattern`), 0 otherwise. Patterns use `*` and `?`.
fn match_pattern_list(s: &str, list: &str) -> i32 {
    let mut subs: Vec<&str> = list.split(',').collect();
    if subs.last() == Some(&"") {
        subs.pop(); // OpenSSH reads no pattern after a final comma (or in an empty list)
    }
    let mut positive = 0;
    for sub in subs {
        let (negated, pattern) = match sub.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, sub),
        };
        if pattern.len() >= 1023 {
            return 0; // OpenSSH's buffer limit: a longer pattern matches nothing
        }
        if match_pattern(s.as_bytes(), pattern.as_bytes()) {
            if negated {
                return -1;
            }
            positive = 1;
        }
    }
    positive
}

/// A glob match of the whole of `s`: `*` any run of bytes, `?` any one byte.
fn match_pattern(s: &[u8], pattern: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match pattern.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((p, q)) => {
                    pi = p + 1;
                    si = q + 1;
                    star = Some((p, q + 1));
                }
                None => return false,
            },
        }
    }
    pattern[pi..].iter().all(|&c| c == b'*')
}

// ---------------------------------------------------------------------------------------------
// Fingerprints, on the sha2 and base64ct crates

/// The fingerprint of an SSH public key blob, as `ssh-keygen -l` shows it: `SHA256:` and the
/// unpadded base64 of the SHA-256 of the blob.
pub fn key_fingerprint(public_key_blob: &[u8]) -> String {
    format!("SHA256:{}", base64_encode(&sha256(public_key_blob), false))
}

fn base64_encode(data: &[u8], pad: bool) -> String {
    use base64ct::Encoding as _;
    if pad {
        base64ct::Base64::encode_string(data)
    } else {
        base64ct::Base64Unpadded::encode_string(data)
    }
}

/// Strict base64: standard alphabet, padded to a multiple of four, `=` only at the end, and
/// the unused bits of the last character zero (so every input has one decoding).
fn base64_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    use base64ct::Encoding as _;
    base64ct::Base64::decode_vec(&String::from_utf8_lossy(input))
        .map_err(|e| format!("not canonical base64 ({e})"))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // --- base64, fingerprints ---------------------------------------------------------

    #[test]
    fn base64_is_rfc4648_and_strict() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes(), true), enc);
            assert_eq!(
                base64_encode(plain.as_bytes(), false),
                enc.trim_end_matches('=')
            );
            assert_eq!(base64_decode(enc.as_bytes()).unwrap(), plain.as_bytes());
        }
        for bad in [
            "Zg", "Zg=", "Zh==", "Zm9=", "Z===", "Zm9v====", "Zm=v", "Zm9v\n", "Zm 9v", "Zm9_",
        ] {
            assert!(
                base64_decode(bad.as_bytes()).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }

    // --- parsing ---------------------------------------------------------------------------------

    fn ssh_string(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_string(&mut v, s);
        v
    }

    fn sample_sig() -> SshSig {
        let mut public_key = ssh_string(b"ssh-ed25519");
        public_key.extend(ssh_string(&[7; 32]));
        let mut signature = ssh_string(b"ssh-ed25519");
        signature.extend(ssh_string(&[9; 64]));
        SshSig {
            public_key,
            key_type: "ssh-ed25519".into(),
            namespace: "git".into(),
            hash_algorithm: "sha512".into(),
            signature,
        }
    }

    /// The armor of any blob, wrapped like ssh-keygen does.
    fn armor(blob: &[u8]) -> String {
        let body = base64_encode(blob, true);
        let mut s = format!("{BEGIN_SSH}\n");
        for line in body.as_bytes().chunks(ARMOR_WIDTH) {
            s.push_str(std::str::from_utf8(line).unwrap());
            s.push('\n');
        }
        s + END_SSH + "\n"
    }

    fn blob_of(sig: &SshSig) -> Vec<u8> {
        let armored = sig.to_armored();
        let body: String = armored
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64_decode(body.as_bytes()).unwrap()
    }

    #[test]
    fn parse_sshsig_reads_every_field() {
        let sig = sample_sig();
        let armored = sig.to_armored();
        assert_eq!(parse_sshsig(&armored).unwrap(), sig);
        // Tolerated: CRLF, surrounding blank lines, trailing blanks.
        let crlf = format!("\n\n{}\n\n", armored.replace('\n', " \r\n"));
        assert_eq!(parse_sshsig(&crlf).unwrap(), sig);
        assert_eq!(parse_sshsig(armored.trim_end()).unwrap(), sig);
        assert_eq!(sig.fingerprint(), key_fingerprint(&sig.public_key));
    }

    #[test]
    fn parse_sshsig_rejects_malformed_signatures() {
        let good = sample_sig();
        let blob = blob_of(&good);
        let armored = good.to_armored();
        let body_line = armored.lines().nth(1).unwrap();
        let with = |f: &dyn Fn(&mut SshSig)| {
            let mut s = good.clone();
            f(&mut s);
            s.to_armored()
        };
        let mut version2 = blob.clone();
        version2[9] = 2;
        let mut bad_magic = blob.clone();
        bad_magic[0] = b'X';
        let mut trailing = blob.clone();
        trailing.push(0);
        let mut lying_length = blob.clone();
        lying_length[13] = 0xff; // public key length now far past the end
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty signature"),
            ("\n \n".into(), "empty signature"),
            (
                armored.replacen(BEGIN_SSH, "-----BEGIN SSH SIG-----", 1),
                "first line",
            ),
            (format!("junk\n{armored}"), "first line"),
            (armored.replace(END_SSH, ""), "last line"),
            (format!("{armored}junk\n"), "last line"),
            (format!("{BEGIN_SSH}\n{END_SSH}\n"), "no base64"),
            (
                armored.replacen(body_line, &format!("{body_line}\n"), 1),
                "blank line",
            ),
            (
                armored.replacen(body_line, &body_line.replacen('A', "*", 1), 1),
                "base64",
            ),
            (format!("{BEGIN_SSH}\nU1NIU0lH\n{END_SSH}"), "version"),
            (armor(&bad_magic), "preamble"),
            (armor(&version2), "unsupported version 2"),
            (armor(&trailing), "trailing data"),
            (armor(&lying_length), "truncated public key"),
            (armor(&blob[..blob.len() - 1]), "truncated signature"),
            (armor(&blob[..30]), "truncated"),
            (
                with(&|s| s.hash_algorithm = "md5".into()),
                "unsupported hash algorithm `md5`",
            ),
            (
                with(&|s| s.namespace = "g\0t".into()),
                "namespace is not text",
            ),
            (with(&|s| s.public_key = Vec::new()), "key type"),
            (with(&|s| s.public_key = ssh_string(b"bad key")), "key type"),
            (with(&|s| s.signature = vec![0, 0, 0]), "algorithm name"),
        ];
        for (input, want) in cases {
            match parse_sshsig(&input) {
                Err(SignError::Malformed { reason }) => {
                    assert!(
                        reason.contains(want),
                        "{input:?}: `{reason}` lacks `{want}`"
                    )
                }
                other => panic!("{input:?}: expected malformed ({want}), got {other:?}"),
            }
        }
        let pgp = "-----BEGIN PGP SIGNATURE-----\n\niQ==\n-----END PGP SIGNATURE-----\n";
        assert!(matches!(
            parse_sshsig(pgp),
            Err(SignError::UnsupportedFormat { format: "openpgp" })
        ));
    }

    // --- splitting tag objects -----------------------------------------------------------------

    const OBJ: &str = "object 0123456789012345678901234567890123456789\ntype commit\ntag v1\ntagger T <t@example.com> 1700000000 +0000\n\nrelease v1\n";

    #[test]
    fn split_signed_tag_like_git() {
        // Unsigned: everything is payload.
        assert_eq!(
            split_signed_tag(OBJ.as_bytes()),
            (OBJ.as_bytes().to_vec(), None)
        );

        // SSH-signed: the signature starts at its marker line.
        let sig = sample_sig().to_armored();
        let raw = format!("{OBJ}{sig}");
        assert_eq!(
            split_signed_tag(raw.as_bytes()),
            (OBJ.as_bytes().to_vec(), Some(sig.clone()))
        );

        // The last marker line wins; a marker not at the start of a line is message text.
        let quoted = format!("{OBJ}see {BEGIN_SSH}\n-----BEGIN PGP SIGNATURE-----\nquoted\n");
        let raw = format!("{quoted}{sig}");
        let (payload, got) = split_signed_tag(raw.as_bytes());
        assert_eq!(payload, quoted.as_bytes());
        assert_eq!(got.as_deref(), Some(sig.as_str()));

        // PGP and X.509 signatures are found too (and then refused by `verify`).
        for marker in [
            "-----BEGIN PGP SIGNATURE-----",
            "-----BEGIN PGP MESSAGE-----",
            "-----BEGIN SIGNED MESSAGE-----",
        ] {
            let raw = format!("{OBJ}{marker}\nxyz\n");
            let (payload, got) = split_signed_tag(raw.as_bytes());
            assert_eq!(payload, OBJ.as_bytes());
            assert_eq!(got.unwrap(), format!("{marker}\nxyz\n"));
        }

        // A signature without a final newline, and one right at the start.
        let raw = format!("{OBJ}{}", sig.trim_end());
        assert_eq!(split_signed_tag(raw.as_bytes()).1.unwrap(), sig.trim_end());
        assert_eq!(
            split_signed_tag(sig.as_bytes()),
            (Vec::new(), Some(sig.clone()))
        );

        // gpgsig headers (compat-hash signatures) are not part of the payload.
        let with_header = OBJ.replacen(
            "tagger",
            "gpgsig-sha256 -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\ntagger",
            1,
        );
        let raw = format!("{with_header}{sig}");
        assert_eq!(split_signed_tag(raw.as_bytes()).0, OBJ.as_bytes());
    }

    // --- signing and verifying with ssh-keygen and git -----------------------------------------

    const SIGNER: &str = "signer@example.com";
    /// 2023-11-14T22:13:20Z.
    const TAG_TIME: i64 = 1_700_000_000;

    struct Fixture {
        dir: tempfile::TempDir,
        repo: git2::Repository,
        head: git2::Oid,
        key: PathBuf,
        other_key: PathBuf,
        allowed: PathBuf,
    }

    fn run_ok(cmd: &mut Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn new_key(dir: &Path, name: &str) -> PathBuf {
        let key = dir.join(name);
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(&key),
        );
        key
    }

    /// `ssh-ed25519 AAAA…` of a key.
    fn public_line(key: &Path) -> String {
        let text = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn public_blob(key: &Path) -> Vec<u8> {
        let line = public_line(key);
        base64_decode(line.split(' ').nth(1).unwrap().as_bytes()).unwrap()
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path().join("repo")).unwrap();
        let head = {
            let who =
                git2::Signature::new("Test", "test@example.com", &git2::Time::new(TAG_TIME, 0))
                    .unwrap();
            let tree = repo
                .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                .unwrap();
            repo.commit(Some("HEAD"), &who, &who, "init", &tree, &[])
                .unwrap()
        };
        let key = new_key(dir.path(), "signer_key");
        let other_key = new_key(dir.path(), "other_key");
        let allowed = dir.path().join("allowed_signers");
        std::fs::write(&allowed, format!("{SIGNER} {}\n", public_line(&key))).unwrap();
        Fixture {
            dir,
            repo,
            head,
            key,
            other_key,
            allowed,
        }
    }

    impl Fixture {
        fn unsigned_tag(&self, name: &str, time: i64, message: &str) -> Vec<u8> {
            format!(
                "object {}\ntype commit\ntag {name}\ntagger Konductor <konductor@example.com> {time} +0000\n\n{message}",
                self.head
            )
            .into_bytes()
        }

        fn write_tag(&self, name: &str, bytes: &[u8]) {
            let oid = self
                .repo
                .odb()
                .unwrap()
                .write(git2::ObjectType::Tag, bytes)
                .unwrap();
            self.repo
                .reference(&format!("refs/tags/{name}"), oid, true, "test")
                .unwrap();
        }

        fn raw_tag(&self, name: &str) -> Vec<u8> {
            let oid = self
                .repo
                .refname_to_id(&format!("refs/tags/{name}"))
                .unwrap();
            self.repo.odb().unwrap().read(oid).unwrap().data().to_vec()
        }

        /// git in the repository, with nothing from the user's or system's configuration.
        fn git(&self, args: &[&str]) -> Output {
            let mut cmd = Command::new("git");
            for var in [
                "GIT_DIR",
                "GIT_WORK_TREE",
                "GIT_INDEX_FILE",
                "GIT_OBJECT_DIRECTORY",
                "SSH_AUTH_SOCK",
            ] {
                cmd.env_remove(var);
            }
            cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", self.dir.path())
                .env("TZ", "UTC")
                .current_dir(self.dir.path().join("repo"))
                .args([
                    "-c",
                    "user.name=Signer",
                    "-c",
                    "user.email=signer@example.com",
                    "-c",
                    "gpg.format=ssh",
                ])
                .args(args);
            cmd.output().unwrap()
        }

        /// `git tag -v NAME` with our allowed signers.
        fn git_tag_v(&self, name: &str) -> Output {
            let allowed = format!("gpg.ssh.allowedSignersFile={}", self.allowed.display());
            self.git(&["-c", &allowed, "tag", "-v", name])
        }
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn sign_tag_object_is_verified_by_git_tag_v() {
        let f = fixture();
        let unsigned = f.unsigned_tag("v1", TAG_TIME, "release v1\n");
        let signed = sign_tag_object(&unsigned, &f.key).unwrap();
        assert!(signed.starts_with(&unsigned));
        assert!(signed[unsigned.len()..].starts_with(BEGIN_SSH.as_bytes()));
        f.write_tag("v1", &signed);

        let out = f.git_tag_v("v1");
        assert!(out.status.success(), "git tag -v failed: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("Good \"git\" signature for {SIGNER}")),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            verify_tag_object(&f.raw_tag("v1"), &f.allowed).unwrap(),
            SIGNER
        );
    }

    #[test]
    fn sign_tag_object_completes_the_last_line() {
        let f = fixture();
        let unsigned = f.unsigned_tag("v2", TAG_TIME, "no final newline");
        let signed = sign_tag_object(&unsigned, &f.key).unwrap();
        assert!(signed.starts_with(&[unsigned.as_slice(), b"\n", BEGIN_SSH.as_bytes()].concat()));
        f.write_tag("v2", &signed);
        let out = f.git_tag_v("v2");
        assert!(out.status.success(), "git tag -v failed: {}", stderr(&out));
        assert_eq!(verify_tag_object(&signed, &f.allowed).unwrap(), SIGNER);
    }

    #[test]
    fn git_tag_s_is_verified_here_and_signed_identically() {
        let f = fixture();
        let key = format!("user.signingkey={}", f.key.display());
        let out = f.git(&["-c", &key, "tag", "-s", "v1", "-m", "release v1"]);
        assert!(out.status.success(), "git tag -s failed: {}", stderr(&out));
        let raw = f.raw_tag("v1");

        let (payload, armored) = split_signed_tag(&raw);
        let armored = armored.expect("git's tag is signed");
        assert_eq!(verify(&payload, &armored, &f.allowed).unwrap(), SIGNER);
        assert_eq!(verify_tag_object(&raw, &f.allowed).unwrap(), SIGNER);

        let sig = parse_sshsig(&armored).unwrap();
        assert_eq!(sig.namespace, "git");
        assert_eq!(sig.hash_algorithm, "sha512");
        assert_eq!(sig.public_key, public_blob(&f.key));
        // Ed25519 signatures are deterministic: signing git's payload here gives git's object.
        assert_eq!(sign_tag_object(&payload, &f.key).unwrap(), raw);
    }

    #[test]
    fn unsigned_tag_is_refused() {
        let f = fixture();
        let unsigned = f.unsigned_tag("v1", TAG_TIME, "release v1\n");
        f.write_tag("v1", &unsigned);
        assert!(!f.git_tag_v("v1").status.success());
        let err = verify_tag_object(&f.raw_tag("v1"), &f.allowed).unwrap_err();
        assert!(matches!(err, SignError::Unsigned), "{err:?}");
        assert_eq!(err.to_string(), "tag is not signed");
        assert!(matches!(
            verify(&unsigned, "", &f.allowed),
            Err(SignError::Unsigned)
        ));
    }

    #[test]
    fn key_not_in_allowed_signers_is_refused() {
        let f = fixture();
        let signed = sign_tag_object(
            &f.unsigned_tag("v1", TAG_TIME, "release v1\n"),
            &f.other_key,
        )
        .unwrap();
        f.write_tag("v1", &signed);
        assert!(!f.git_tag_v("v1").status.success());

        let err = verify_tag_object(&signed, &f.allowed).unwrap_err();
        let fingerprint = key_fingerprint(&public_blob(&f.other_key));
        match &err {
            SignError::NotAllowed {
                fingerprint: got,
                path,
                detail,
            } => {
                assert_eq!(got, &fingerprint);
                assert_eq!(path, &f.allowed);
                assert_eq!(detail, &None);
            }
            other => panic!("expected not allowed, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "signature by key {fingerprint} is not in allowed signers `{}`",
                f.allowed.display()
            )
        );
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() {
        let f = fixture();
        let signed =
            sign_tag_object(&f.unsigned_tag("v1", TAG_TIME, "release v1\n"), &f.key).unwrap();
        let mut tampered = signed.clone();
        let at = tampered
            .windows(10)
            .position(|w| w == b"release v1")
            .unwrap()
            + 9;
        tampered[at] = b'2';
        f.write_tag("v1", &tampered);
        assert!(!f.git_tag_v("v1").status.success());

        let err = verify_tag_object(&tampered, &f.allowed).unwrap_err();
        match &err {
            SignError::BadSignature {
                fingerprint,
                principal,
                detail,
            } => {
                assert_eq!(fingerprint, &key_fingerprint(&public_blob(&f.key)));
                assert_eq!(principal, SIGNER);
                assert!(detail.contains("incorrect signature"), "{detail}");
            }
            other => panic!("expected a bad signature, got {other:?}"),
        }
        assert!(
            err.to_string().starts_with("bad signature by key SHA256:"),
            "{err}"
        );
        // The untouched object still verifies.
        assert_eq!(verify_tag_object(&signed, &f.allowed).unwrap(), SIGNER);
    }

    #[test]
    fn wrong_namespace_is_refused() {
        let f = fixture();
        let unsigned = f.unsigned_tag("v1", TAG_TIME, "release v1\n");
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "file", "-f"])
            .arg(&f.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&unsigned).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let signed = [unsigned.as_slice(), &out.stdout].concat();
        f.write_tag("v1", &signed);
        assert!(!f.git_tag_v("v1").status.success());

        let err = verify_tag_object(&signed, &f.allowed).unwrap_err();
        match &err {
            SignError::WrongNamespace {
                expected, found, ..
            } => {
                assert_eq!((expected.as_str(), found.as_str()), ("git", "file"));
            }
            other => panic!("expected a wrong namespace, got {other:?}"),
        }
        assert!(
            err.to_string()
                .ends_with("is for namespace `file`, not `git`"),
            "{err}"
        );
    }

    #[test]
    fn pgp_signed_tag_is_an_unsupported_format() {
        let f = fixture();
        let mut raw = f.unsigned_tag("v1", TAG_TIME, "release v1\n");
        raw.extend_from_slice(
            b"-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n",
        );
        let err = verify_tag_object(&raw, &f.allowed).unwrap_err();
        assert!(
            matches!(err, SignError::UnsupportedFormat { format: "openpgp" }),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .starts_with("tag is signed with an unsupported format (openpgp)"));
    }

    #[test]
    fn key_validity_is_checked_at_the_tagger_time_like_git() {
        let f = fixture();
        // The key is valid until 2024-01-01: a 2023 tag verifies, a 2024 one does not.
        std::fs::write(
            &f.allowed,
            format!(
                "{SIGNER} valid-before=\"20240101Z\" {}\n",
                public_line(&f.key)
            ),
        )
        .unwrap();
        let old = sign_tag_object(&f.unsigned_tag("old", TAG_TIME, "old\n"), &f.key).unwrap();
        let new = sign_tag_object(&f.unsigned_tag("new", 1_710_000_000, "new\n"), &f.key).unwrap();
        f.write_tag("old", &old);
        f.write_tag("new", &new);

        assert_eq!(verify_tag_object(&old, &f.allowed).unwrap(), SIGNER);
        assert!(f.git_tag_v("old").status.success());

        match verify_tag_object(&new, &f.allowed).unwrap_err() {
            SignError::NotAllowed {
                detail: Some(detail),
                ..
            } => assert!(detail.contains("expired"), "{detail}"),
            other => panic!("expected an expired key, got {other:?}"),
        }
        assert!(!f.git_tag_v("new").status.success());
        assert_eq!(
            payload_time(&f.unsigned_tag("x", TAG_TIME, "")).as_deref(),
            Some("20231114221320Z")
        );
        assert_eq!(payload_time(b"no tagger\n\ntagger T <t> 1 +0000\n"), None);
    }

    #[test]
    fn sign_and_parse_round_trip_a_real_signature() {
        let f = fixture();
        let armored = sign(b"hello\n", &f.key).unwrap();
        let sig = parse_sshsig(&armored).unwrap();
        assert_eq!(sig.key_type, "ssh-ed25519");
        assert_eq!(sig.namespace, "git");
        assert_eq!(sig.hash_algorithm, "sha512");
        assert_eq!(sig.public_key, public_blob(&f.key));
        assert_eq!(Reader(&sig.signature).string(), Some(&b"ssh-ed25519"[..]));
        assert_eq!(
            sig.to_armored(),
            armored,
            "re-armoring gives ssh-keygen's bytes"
        );
        assert_eq!(verify(b"hello\n", &armored, &f.allowed).unwrap(), SIGNER);
    }

    #[test]
    fn key_fingerprint_matches_ssh_keygen() {
        let f = fixture();
        for key in [&f.key, &f.other_key] {
            let out = run_ok(
                Command::new("ssh-keygen")
                    .arg("-lf")
                    .arg(key.with_extension("pub")),
            );
            let listed = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string();
            assert_eq!(key_fingerprint(&public_blob(key)), listed);
        }
    }

    #[test]
    fn sign_tag_object_refuses_a_signed_object() {
        let f = fixture();
        let signed = sign_tag_object(&f.unsigned_tag("v1", TAG_TIME, "m\n"), &f.key).unwrap();
        assert!(matches!(
            sign_tag_object(&signed, &f.key),
            Err(SignError::AlreadySigned)
        ));
        let with_header = format!(
            "object {}\ntype commit\ntag v1\ntagger T <t@x> 1 +0000\ngpgsig-sha256 x\n\nm\n",
            f.head
        );
        assert!(matches!(
            sign_tag_object(with_header.as_bytes(), &f.key),
            Err(SignError::AlreadySigned)
        ));
    }

    #[test]
    fn missing_files_and_programs_are_named() {
        let f = fixture();
        let nowhere = f.dir.path().join("nowhere");
        let err = sign(b"x", &nowhere).unwrap_err();
        assert!(matches!(err, SignError::KeyUnreadable { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with(&format!("cannot read signing key `{}`", nowhere.display())));

        let armored = sign(b"x", &f.key).unwrap();
        let err = verify(b"x", &armored, &nowhere).unwrap_err();
        assert!(
            matches!(err, SignError::AllowedSignersUnreadable { .. }),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(&format!(
            "cannot read allowed signers `{}`",
            nowhere.display()
        )));

        let missing = Keygen {
            program: OsString::from("/nonexistent/konductor/ssh-keygen"),
            ..keygen_only()
        };
        let err = missing.sign(b"x", &f.key).unwrap_err();
        assert!(matches!(err, SignError::SshKeygenMissing), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`ssh-keygen` not found: install openssh-client"
        );
        assert!(matches!(
            missing.verify(b"x", &armored, &f.allowed),
            Err(SignError::SshKeygenMissing)
        ));

        // Not a private key: ssh-keygen's own words come through.
        let err = sign(b"x", &f.allowed).unwrap_err();
        assert!(
            matches!(err, SignError::SshKeygen { action: "sign", .. }),
            "{err:?}"
        );
    }

    // --- in-process verification ---------------------------------------------------------------

    /// The `ssh-keygen` path alone.
    fn keygen_only() -> Keygen {
        Keygen {
            in_process: false,
            ..Keygen::default()
        }
    }

    /// A result as text, with times (local in ssh-keygen's messages, UTC here) blanked, and
    /// without OpenSSH 9.2's complaint about blank lines (`FILE:N: missing key`, fixed in
    /// later versions; the line is skipped either way).
    fn outcome(r: Result<String, SignError>) -> String {
        let text = match r {
            Ok(p) => format!("ok {p}"),
            Err(e) => format!("error {e}"),
        };
        let text = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
            .unwrap()
            .replace_all(&text, "<time>");
        let text = regex::Regex::new(r"[^ (]*:\d+: missing key; ")
            .unwrap()
            .replace_all(&text, "");
        text.replace(" (No principal matched.)", "")
    }

    #[test]
    fn in_process_verifies_a_tag_signed_by_ssh_keygen() {
        let f = fixture();
        let signed =
            sign_tag_object(&f.unsigned_tag("v1", TAG_TIME, "release v1\n"), &f.key).unwrap();
        let (payload, armored) = split_signed_tag(&signed);
        let armored = armored.unwrap();
        let fp = key_fingerprint(&public_blob(&f.key));
        match verify_in_process(&payload, &armored, &fp, &f.allowed) {
            Some(Ok(principal)) => assert_eq!(principal, SIGNER),
            other => panic!("expected the in-process path to verify, got {other:?}"),
        }
    }

    #[test]
    fn in_process_refuses_a_tampered_tag_an_unlisted_key_and_a_namespace_not_permitted() {
        let f = fixture();
        let unsigned = f.unsigned_tag("v1", TAG_TIME, "release v1\n");
        let fp = key_fingerprint(&public_blob(&f.key));
        let armored = sign(&unsigned, &f.key).unwrap();

        let mut tampered = unsigned.clone();
        *tampered.last_mut().unwrap() = b'!';
        match verify_in_process(&tampered, &armored, &fp, &f.allowed) {
            Some(Err(SignError::BadSignature { detail, .. })) => {
                assert!(detail.contains("incorrect signature"), "{detail}")
            }
            other => panic!("expected a bad signature, got {other:?}"),
        }

        let other = sign(&unsigned, &f.other_key).unwrap();
        let other_fp = key_fingerprint(&public_blob(&f.other_key));
        match verify_in_process(&unsigned, &other, &other_fp, &f.allowed) {
            Some(Err(SignError::NotAllowed { detail: None, .. })) => {}
            other => panic!("expected not allowed, got {other:?}"),
        }

        std::fs::write(
            &f.allowed,
            format!("{SIGNER} namespaces=\"file\" {}\n", public_line(&f.key)),
        )
        .unwrap();
        match verify_in_process(&unsigned, &armored, &fp, &f.allowed) {
            Some(Err(SignError::BadSignature { detail, .. })) => assert!(
                detail.contains("not permitted for use in signature namespace \"git\""),
                "{detail}"
            ),
            other => panic!("expected a namespace refusal, got {other:?}"),
        }
    }

    #[test]
    fn in_process_agrees_with_ssh_keygen_on_allowed_signers_files() {
        let f = fixture();
        let (s, o) = (public_line(&f.key), public_line(&f.other_key));
        // (allowed signers, whether the in-process path answers)
        let cases: Vec<(String, bool)> = vec![
            (format!("{SIGNER} {s}\n"), true),
            (format!("# team\n\n  \t{SIGNER} {s} signer's laptop\n"), true),
            (format!("{SIGNER} {s}\r\n"), true),
            (format!("other@example.com {o}\n{SIGNER} {s}\n"), true),
            (format!("{SIGNER} {o}\n"), true),
            (format!("a@example.com,b@example.com {s}\n"), true),
            (format!("a@example.com,,b@example.com {s}\n"), true),
            (format!("*@example.com {s}\n"), true),
            (format!("!{SIGNER},*@example.com {s}\n"), true),
            (format!("{SIGNER} namespaces=\"git\" {s}\n"), true),
            (format!("{SIGNER} namespaces=\"file\" {s}\n"), true),
            (format!("{SIGNER} namespaces=\"file,g?t\" {s}\n"), true),
            (format!("{SIGNER} namespaces=\"!git,*\" {s}\n"), true),
            (format!("{SIGNER} NAMESPACES=\"git\" {s}\n"), true),
            (
                format!("x@example.com namespaces=\"file\" {s}\n{SIGNER} {s}\n"),
                true,
            ),
            (format!("{SIGNER} valid-before=\"20240101Z\" {s}\n"), true),
            (format!("{SIGNER} valid-after=\"20240101Z\" {s}\n"), true),
            (
                format!("{SIGNER} valid-after=\"202301010000Z\",valid-before=\"20240101120000UTC\" {s}\n"),
                true,
            ),
            (
                format!("old@example.com valid-before=\"20200101Z\" {s}\n{SIGNER} {s}\n"),
                true,
            ),
            (format!("{SIGNER} valid-before=\"20240101\" {s}\n"), false),
            (format!("{SIGNER} cert-authority {s}\n"), false),
            (format!("{SIGNER} no-such-option {s}\n"), false),
            (format!("\"{SIGNER}\" {s}\n"), false),
            (format!("{SIGNER}\n"), false),
        ];
        let times = [TAG_TIME, 1_710_000_000];
        let fp = key_fingerprint(&public_blob(&f.key));
        let other_fp = key_fingerprint(&public_blob(&f.other_key));
        for (allowed, answers) in &cases {
            std::fs::write(&f.allowed, allowed).unwrap();
            for time in times {
                let unsigned = f.unsigned_tag("v1", time, "release v1\n");
                let mut tampered = unsigned.clone();
                *tampered.last_mut().unwrap() = b'!';
                let by_signer = sign(&unsigned, &f.key).unwrap();
                let by_other = sign(&unsigned, &f.other_key).unwrap();
                for (payload, armored, fp) in [
                    (&unsigned, &by_signer, &fp),
                    (&tampered, &by_signer, &fp),
                    (&unsigned, &by_other, &other_fp),
                ] {
                    let here = verify_in_process(payload, armored, fp, &f.allowed);
                    assert_eq!(here.is_some(), *answers, "{allowed:?}: {here:?}");
                    if let Some(here) = here {
                        let keygen = keygen_only().verify(payload, armored, &f.allowed);
                        assert_eq!(outcome(here), outcome(keygen), "{allowed:?} at {time}");
                    }
                }
            }
        }
    }

    #[test]
    fn allowed_signer_patterns_and_times_follow_openssh() {
        for (s, list, want) in [
            ("a@x", "a@x", 1),
            ("a@x", "b@x,a@x", 1),
            ("a@x", "*@x", 1),
            ("a@x", "?@x", 1),
            ("ab@x", "?@x", 0),
            ("a@x", "!a@x,*", -1),
            ("a@x", "*,!a@x", -1),
            ("a@x", "", 0),
            ("", "", 0),
            ("", "a,", 0),
            ("", "a,,", 1),
            ("", ",", 1),
            ("", "*", 1),
            ("a*b", "a\\*b", 0),
            ("abcabd", "*abd", 1),
            ("abcabd", "a*c*d", 1),
            ("abcabd", "a*c*e", 0),
        ] {
            assert_eq!(match_pattern_list(s, list), want, "{s:?} in {list:?}");
        }
        assert_eq!(match_pattern_list("a", &"a".repeat(1023)), 0);
        assert_eq!(utc_time("20240101Z"), Some(1_704_067_200));
        assert_eq!(utc_time("202401010130z"), Some(1_704_072_600));
        assert_eq!(utc_time("20240101013005UTC"), Some(1_704_072_605));
        for local_or_bad in [
            "20240101",
            "2024010Z",
            "20240230Z",
            "20241301Z",
            "19700101Z",
            "2024-01-01Z",
            "Z",
            "20240101013060Z",
        ] {
            assert_eq!(utc_time(local_or_bad), None, "{local_or_bad}");
        }
    }

    /// `cargo test --release -p konductor-core --lib verify_1000_signed_tags -- --ignored
    /// --nocapture`: the figures in docs/architecture.md ("Signatures").
    #[test]
    #[ignore = "a benchmark: prints timings"]
    fn verify_1000_signed_tags() {
        let f = fixture();
        let tags: Vec<Vec<u8>> = (0..1000)
            .map(|i| {
                let unsigned = f.unsigned_tag(&format!("t{i}"), TAG_TIME + i, "release\n");
                sign_tag_object(&unsigned, &f.key).unwrap()
            })
            .collect();
        let time = |keygen: &Keygen| {
            let start = std::time::Instant::now();
            for raw in &tags {
                assert_eq!(keygen.verify_tag_object(raw, &f.allowed).unwrap(), SIGNER);
            }
            start.elapsed()
        };
        let in_process = time(&Keygen::default());
        let processes = time(&keygen_only());
        println!(
            "verify 1000 signed tags: ssh-keygen processes {:.2?} ({:.2?}/tag), in-process {:.2?} ({:.2?}/tag), {:.0}x",
            processes,
            processes / 1000,
            in_process,
            in_process / 1000,
            processes.as_secs_f64() / in_process.as_secs_f64()
        );
    }

    // --- properties ------------------------------------------------------------------------------

    /// SSHSIG-shaped blobs: the magic and version, then fields with honest or lying lengths,
    /// cut anywhere.
    fn sshsig_shaped() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(
                (
                    prop::collection::vec(any::<u8>(), 0..24),
                    any::<bool>(),
                    any::<u32>(),
                ),
                0..7,
            ),
            any::<u32>(),
            any::<usize>(),
        )
            .prop_map(|(fields, version, cut)| {
                let mut blob = MAGIC.to_vec();
                blob.extend_from_slice(&(version % 3).to_be_bytes());
                for (bytes, honest, len) in fields {
                    let len = if honest { bytes.len() as u32 } else { len };
                    blob.extend_from_slice(&len.to_be_bytes());
                    blob.extend_from_slice(&bytes);
                }
                let keep = cut % (blob.len() + 1);
                blob.truncate(keep.max(blob.len().min(10)));
                blob
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(s in "\\PC{0,300}") {
            let _ = parse_sshsig(&s);
            let _ = parse_sshsig(&format!("{BEGIN_SSH}\n{s}\n{END_SSH}\n"));
            let _ = split_signed_tag(s.as_bytes());
        }

        #[test]
        fn parse_never_panics_on_armored_bytes(blob in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_sshsig(&armor(&blob));
            let mut shaped = MAGIC.to_vec();
            shaped.extend_from_slice(&blob);
            let _ = parse_sshsig(&armor(&shaped));
        }

        #[test]
        fn parse_never_panics_on_sshsig_shaped_bytes(blob in sshsig_shaped()) {
            let _ = parse_sshsig(&armor(&blob));
        }

        #[test]
        fn sshsig_fields_round_trip(
            key_type in "[a-z0-9@.-]{1,30}",
            key in prop::collection::vec(any::<u8>(), 0..80),
            namespace in "[^\u{0}]{0,20}",
            sha512 in any::<bool>(),
            sig_alg in "[a-z0-9@.-]{1,30}",
            sig in prop::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut public_key = ssh_string(key_type.as_bytes());
            public_key.extend(key);
            let mut signature = ssh_string(sig_alg.as_bytes());
            signature.extend(sig);
            let want = SshSig {
                public_key,
                key_type,
                namespace,
                hash_algorithm: if sha512 { "sha512" } else { "sha256" }.to_string(),
                signature,
            };
            prop_assert_eq!(parse_sshsig(&want.to_armored()).unwrap(), want);
        }

        #[test]
        fn split_signed_tag_keeps_every_byte(
            lines in prop::collection::vec(
                prop_oneof![
                    Just(BEGIN_SSH.to_string()),
                    Just("-----BEGIN PGP SIGNATURE-----".to_string()),
                    "[ -~]{0,20}",
                ],
                0..12,
            ),
            final_newline in any::<bool>(),
        ) {
            let mut raw = lines.join("\n");
            if final_newline {
                raw.push('\n');
            }
            let (payload, sig) = split_signed_tag(raw.as_bytes());
            let sig = sig.unwrap_or_default();
            if !raw.contains("gpgsig") {
                prop_assert_eq!([payload.as_slice(), sig.as_bytes()].concat(), raw.as_bytes());
            }
            prop_assert!(sig.is_empty() || marker_format(sig.as_bytes()).is_some());
        }
    }
}
