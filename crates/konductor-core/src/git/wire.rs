//! A minimal `git-receive-pack` client for one job: deleting many refs in one atomic push.
//!
//! Why not `git push :ref …`: the git CLI matches every explicit refspec against every
//! advertised ref (`count_refspec_match` → `refname_match`, six `snprintf`s per pair), so
//! deleting k refs from a remote with R refs costs k·R: 2,000 deletes at 10,000 refs took
//! 30–43 s, and collecting 1,000,000 tags would take days. libgit2's push does the same
//! pairing with `strcmp` and has no atomic pushes, and without `atomic` the server commits
//! every command as its own transaction (one rewrite of `packed-refs` per deleted ref).
//!
//! This client reads the advertisement once, keeps only the refs it was asked to delete
//! (a hash lookup per advertised ref: O(R)), and sends the deletes as one `atomic`
//! command list with the expected old ids. The server's compare-and-swap on the old id
//! is the lock: a ref that changed since the caller read it is never deleted. Measured in
//! `docs/architecture.md` ("gc deletes").
//!
//! Transports: a local path or `file://` (spawns `git receive-pack`), `git://` (TCP), and
//! plain `http://` (smart HTTP, HTTP/1.1). Everything else (https, ssh, proxies, a server
//! without `atomic`/`delete-refs`) is [`WireError::Unsupported`]: the caller falls back to
//! the git CLI, which is correct, only slower for very large batches.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const ZERO: &str = "0000000000000000000000000000000000000000";
const AGENT: &str = concat!("agent=konductor/", env!("CARGO_PKG_VERSION"));

/// One ref to delete, with the id the caller last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Full ref name (`refs/tags/…`).
    pub refname: String,
    /// The id it must still have on the remote.
    pub old: String,
}

/// What a delete push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Deleted by this push.
    pub deleted: Vec<String>,
    /// Not on the remote any more (someone else deleted them): nothing to do.
    pub gone: Vec<String>,
    /// On the remote with another id than expected: left alone.
    pub changed: Vec<String>,
}

/// Why a delete push did not happen.
#[derive(Debug)]
pub enum WireError {
    /// This client can't talk to that remote; use the git CLI.
    Unsupported(String),
    /// The server refused the credentials (HTTP 401/403).
    Auth(String),
    /// The server could not be reached or broke the protocol.
    Remote(String),
    /// The server refused the update (nothing was deleted: the push is atomic).
    Rejected(String),
}

/// Where receive-pack is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A repository on this machine.
    Local(PathBuf),
    /// `git://host:port/path`.
    Daemon {
        /// Host name or address.
        host: String,
        /// TCP port (default 9418).
        port: u16,
        /// Path on the server, with its leading `/`.
        path: String,
    },
    /// `http://host:port/path` (smart HTTP).
    Http {
        /// Host name or address.
        host: String,
        /// TCP port (default 80).
        port: u16,
        /// Repository path, with its leading `/` and without a trailing `/`.
        path: String,
    },
}

impl Endpoint {
    /// The endpoint of a (credential-free) remote URL, or why this client can't use it.
    pub fn parse(url: &str) -> Result<Endpoint, WireError> {
        if url.starts_with('/') {
            return Ok(Endpoint::Local(PathBuf::from(url)));
        }
        if let Some(p) = url.strip_prefix("file://") {
            return Ok(Endpoint::Local(PathBuf::from(p)));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| WireError::Unsupported(format!("`{url}` is not a URL")))?;
        let default_port = match scheme {
            "git" => 9418,
            "http" => 80,
            other => {
                return Err(WireError::Unsupported(format!(
                    "{other}:// (only paths, file://, git:// and http:// are spoken natively)"
                )))
            }
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.contains('@') || authority.starts_with('[') {
            return Err(WireError::Unsupported(
                "user info or IPv6 literal in the URL".into(),
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| WireError::Unsupported(format!("port `{p}`")))?,
            ),
            None => (authority.to_string(), default_port),
        };
        let path = format!("/{}", path.trim_end_matches('/'));
        if scheme == "git" {
            Ok(Endpoint::Daemon { host, port, path })
        } else {
            if ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
                .iter()
                .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
            {
                return Err(WireError::Unsupported("an HTTP proxy is configured".into()));
            }
            Ok(Endpoint::Http { host, port, path })
        }
    }
}

/// Delete `dels` on the remote in one atomic push. `auth` is a complete
/// `Authorization: …` header value for HTTP (never printed).
pub fn delete_refs(
    ep: &Endpoint,
    auth: Option<&str>,
    dels: &[Delete],
) -> Result<DeleteReport, WireError> {
    match ep {
        Endpoint::Local(path) => {
            let mut child = local_receive_pack(path, Stdio::piped())?;
            let out = child.stdout.take().expect("piped");
            let mut inp = child.stdin.take().expect("piped");
            let res = converse(&mut BufReader::new(out), &mut inp, dels);
            drop(inp);
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            res.map_err(|e| match e {
                WireError::Remote(m) if !err.trim().is_empty() => {
                    WireError::Remote(format!("{m} ({})", err.trim()))
                }
                e => e,
            })
        }
        Endpoint::Daemon { host, port, path } => {
            let (stream, mut w) = daemon_receive_pack(host, *port, path)?;
            converse(&mut BufReader::new(stream), &mut w, dels)
        }
        Endpoint::Http { host, port, path } => {
            let adv = http_advertisement(host, *port, path, auth)?;
            let mut r = BufReader::new(&adv[..]);
            skip_http_preamble(&mut r)?;
            let (refs, caps) = read_advertisement(&mut r, dels)?;
            let (report, body) = plan(&refs, &caps, dels)?;
            if body.is_empty() {
                return Ok(report);
            }
            let res = http_receive_pack(host, *port, path, auth, &body)?;
            read_status(&mut BufReader::new(&res[..]), report)
        }
    }
}

/// What [`create_after_look`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The caller looked at the refs and sent nothing.
    Declined,
    /// The server created the ref.
    Created,
    /// The server refused it (`ng <ref> <why>`), e.g. it appeared meanwhile.
    Refused(String),
}

/// A create-only push of one ref, decided after a look at the remote's refs, in one
/// connection: read the advertisement (keeping the refs `keep` accepts), ask `decide`,
/// and send its command (`0…0 <oid> <refname>`) with its pack, or nothing. The server's
/// compare-and-swap on the zero old id makes the create exactly-once.
pub fn create_after_look(
    ep: &Endpoint,
    auth: Option<&str>,
    keep: &dyn Fn(&str) -> bool,
    decide: &mut dyn FnMut(&HashMap<String, String>) -> Option<NewRef>,
) -> Result<CreateOutcome, WireError> {
    match ep {
        Endpoint::Local(path) => {
            // stderr not read: receive-pack starts `git maintenance run --auto --detach`,
            // which keeps a stderr pipe open long after the push (reading it to its end
            // cost 60–90 ms a push). Failures go the general way, which says why.
            let mut child = local_receive_pack(path, Stdio::null())?;
            let out = child.stdout.take().expect("piped");
            let mut inp = child.stdin.take().expect("piped");
            let res = converse_create(&mut BufReader::new(out), &mut inp, keep, decide);
            drop(inp);
            let _ = child.wait();
            res
        }
        Endpoint::Daemon { host, port, path } => {
            let (stream, mut w) = daemon_receive_pack(host, *port, path)?;
            converse_create(&mut BufReader::new(stream), &mut w, keep, decide)
        }
        Endpoint::Http { host, port, path } => {
            let adv = http_advertisement(host, *port, path, auth)?;
            let mut r = BufReader::new(&adv[..]);
            skip_http_preamble(&mut r)?;
            let (refs, caps) = read_advertisement_where(&mut r, keep)?;
            let Some(new) = decide(&refs) else {
                return Ok(CreateOutcome::Declined);
            };
            let body = create_body(&caps, &new)?;
            let res = http_receive_pack(host, *port, path, auth, &body)?;
            read_create_status(&mut BufReader::new(&res[..]))
        }
    }
}

/// One ref to create: its name, the object's id, and a pack holding the object.
#[derive(Debug, Clone)]
pub struct NewRef {
    /// Full ref name (`refs/tags/…`).
    pub refname: String,
    /// The new object's id.
    pub oid: String,
    /// A pack with the objects the server lacks.
    pub pack: Vec<u8>,
}

fn create_body(caps: &[String], new: &NewRef) -> Result<Vec<u8>, WireError> {
    if !caps.iter().any(|c| c == "report-status") {
        return Err(WireError::Unsupported(
            "the server does not offer `report-status`".into(),
        ));
    }
    if caps
        .iter()
        .any(|c| c.starts_with("object-format=") && c != "object-format=sha1")
    {
        return Err(WireError::Unsupported("a non-SHA-1 repository".into()));
    }
    let mut line = format!("{ZERO} {} {}", new.oid, new.refname).into_bytes();
    line.push(0);
    line.extend_from_slice(format!("report-status {AGENT}").as_bytes());
    line.push(b'\n');
    let mut body = pkt(&line);
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&new.pack);
    Ok(body)
}

fn converse_create(
    r: &mut impl BufRead,
    w: &mut impl Write,
    keep: &dyn Fn(&str) -> bool,
    decide: &mut dyn FnMut(&HashMap<String, String>) -> Option<NewRef>,
) -> Result<CreateOutcome, WireError> {
    let (refs, caps) = read_advertisement_where(r, keep)?;
    let body = match decide(&refs) {
        Some(new) => create_body(&caps, &new),
        None => Ok(Vec::new()),
    };
    let body = match body {
        Ok(b) if !b.is_empty() => b,
        other => {
            // Nothing to send: a flush-pkt ends the session.
            let _ = w.write_all(b"0000");
            let _ = w.flush();
            return other.map(|_| CreateOutcome::Declined);
        }
    };
    w.write_all(&body).map_err(io_err)?;
    w.flush().map_err(io_err)?;
    read_create_status(r)
}

/// Read `report-status` for one create.
fn read_create_status(r: &mut impl BufRead) -> Result<CreateOutcome, WireError> {
    let mut unpack = None;
    let mut ok = false;
    let mut ng = None;
    while let Some(line) = read_pkt(r)? {
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(u) = line.strip_prefix("unpack ") {
            unpack = Some(u.to_string());
        } else if line.starts_with("ok ") {
            ok = true;
        } else if let Some(n) = line.strip_prefix("ng ") {
            ng = Some(n.split_once(' ').map_or(n, |(_, why)| why).to_string());
        }
    }
    match unpack.as_deref() {
        Some("ok") => {}
        Some(other) => return Err(WireError::Rejected(format!("unpack {other}"))),
        None => return Err(WireError::Remote("no report from the server".into())),
    }
    match (ok, ng) {
        (_, Some(why)) => Ok(CreateOutcome::Refused(why)),
        (true, None) => Ok(CreateOutcome::Created),
        (false, None) => Err(WireError::Remote(
            "the server did not confirm the ref".into(),
        )),
    }
}

/// The most a [`fetch_after_look`] pack may weigh: it holds a few tag objects, so anything
/// larger means the server is sending more than was asked (its commit, say), and the
/// caller takes the general path instead.
const MAX_TAG_PACK: usize = 1 << 20;

/// What the objects to ask for are: `wants` (advertised ids) and `haves` (ids the server
/// has, whose history the pack must leave out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    /// Objects to receive.
    pub wants: Vec<String>,
    /// Commits both sides treat as common.
    pub haves: Vec<String>,
}

/// What [`fetch_after_look`] saw and received.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The advertised ids of the refs `keep` accepted; an annotated tag's commit appears
    /// as `<ref>^{}` (the advertisement's peeled lines), when `keep` accepts that name.
    pub refs: HashMap<String, String>,
    /// The pack received (empty when nothing was wanted).
    pub pack: Vec<u8>,
}

/// One upload-pack conversation (protocol v0): read the advertisement (keeping the refs
/// `keep` accepts, peeled `^{}` lines included), ask `choose` what to want, and receive
/// that pack. No wants: the advertisement alone. The server must have every `have` (it
/// answers `ACK`); a `NAK` or a pack over [`MAX_TAG_PACK`] is an error, so that a caller
/// asking for tag objects never downloads a commit's tree.
pub fn fetch_after_look(
    ep: &Endpoint,
    auth: Option<&str>,
    keep: &dyn Fn(&str) -> bool,
    choose: &mut dyn FnMut(&HashMap<String, String>) -> Wants,
) -> Result<Fetched, WireError> {
    match ep {
        Endpoint::Local(path) => {
            let mut child = Command::new(git_program())
                .arg("upload-pack")
                .arg(path)
                .env("LC_ALL", "C")
                .env_remove("GIT_PROTOCOL")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| WireError::Remote(format!("cannot run `git upload-pack`: {e}")))?;
            let out = child.stdout.take().expect("piped");
            let mut inp = child.stdin.take().expect("piped");
            let res = converse_fetch(&mut BufReader::new(out), &mut inp, keep, choose);
            drop(inp);
            if res.is_err() {
                let _ = child.kill();
            }
            let _ = child.wait();
            res
        }
        Endpoint::Daemon { host, port, path } => {
            let stream = connect(host, *port)?;
            let mut w = stream
                .try_clone()
                .map_err(|e| WireError::Remote(e.to_string()))?;
            let host_arg = if *port == 9418 {
                host.to_string()
            } else {
                format!("{host}:{port}")
            };
            let req = format!("git-upload-pack {path}\0host={host_arg}\0");
            w.write_all(&pkt(req.as_bytes())).map_err(io_err)?;
            let res = converse_fetch(&mut BufReader::new(stream), &mut w, keep, choose);
            let _ = w.shutdown(std::net::Shutdown::Both);
            res
        }
        Endpoint::Http { host, port, path } => {
            let adv = http(
                host,
                *port,
                "GET",
                &format!("{path}/info/refs?service=git-upload-pack"),
                auth,
                None,
            )?;
            let mut r = BufReader::new(&adv[..]);
            skip_http_preamble_of(&mut r, "git-upload-pack")?;
            let (refs, caps) = read_advertisement_where(&mut r, keep)?;
            let wants = choose(&refs);
            if wants.wants.is_empty() {
                return Ok(Fetched {
                    refs,
                    pack: Vec::new(),
                });
            }
            let (body, sideband) = upload_request(&caps, &wants)?;
            let res = http(
                host,
                *port,
                "POST",
                &format!("{path}/git-upload-pack"),
                auth,
                Some(&body),
            )?;
            let pack = read_pack_response(&mut BufReader::new(&res[..]), sideband)?;
            Ok(Fetched { refs, pack })
        }
    }
}

/// The upload-pack request for `wants` (one `done`: no negotiation rounds), and whether
/// the pack comes side-band.
fn upload_request(caps: &[String], wants: &Wants) -> Result<(Vec<u8>, bool), WireError> {
    if caps
        .iter()
        .any(|c| c.starts_with("object-format=") && c != "object-format=sha1")
    {
        return Err(WireError::Unsupported("a non-SHA-1 repository".into()));
    }
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut ours = Vec::new();
    let sideband = if has("side-band-64k") {
        ours.push("side-band-64k");
        true
    } else if has("side-band") {
        ours.push("side-band");
        true
    } else {
        false
    };
    for c in ["ofs-delta", "no-progress"] {
        if has(c) {
            ours.push(c);
        }
    }
    let mut body = Vec::new();
    for (i, w) in wants.wants.iter().enumerate() {
        let line = if i == 0 {
            format!("want {w} {} {AGENT}\n", ours.join(" "))
        } else {
            format!("want {w}\n")
        };
        body.extend(pkt(line.as_bytes()));
    }
    body.extend_from_slice(b"0000");
    for h in &wants.haves {
        body.extend(pkt(format!("have {h}\n").as_bytes()));
    }
    body.extend(pkt(b"done\n"));
    Ok((body, sideband))
}

fn converse_fetch(
    r: &mut impl BufRead,
    w: &mut impl Write,
    keep: &dyn Fn(&str) -> bool,
    choose: &mut dyn FnMut(&HashMap<String, String>) -> Wants,
) -> Result<Fetched, WireError> {
    let (refs, caps) = read_advertisement_where(r, keep)?;
    let wants = choose(&refs);
    if wants.wants.is_empty() {
        // Nothing wanted: a flush-pkt ends the session.
        let _ = w.write_all(b"0000");
        let _ = w.flush();
        return Ok(Fetched {
            refs,
            pack: Vec::new(),
        });
    }
    let (body, sideband) = upload_request(&caps, &wants)?;
    w.write_all(&body).map_err(io_err)?;
    w.flush().map_err(io_err)?;
    let pack = read_pack_response(r, sideband)?;
    Ok(Fetched { refs, pack })
}

/// After `done`: one `ACK <id>` (the server has our `have`) or `NAK`, then the pack,
/// side-band (band 1 the pack, 2 progress, 3 an error) or raw to the end.
fn read_pack_response(r: &mut impl BufRead, sideband: bool) -> Result<Vec<u8>, WireError> {
    match read_pkt(r)? {
        Some(l) if l.starts_with(b"ACK ") => {}
        Some(l) if l.starts_with(b"NAK") => {
            return Err(WireError::Unsupported(
                "the server does not have the commit the pack was to leave out".into(),
            ))
        }
        _ => return Err(WireError::Remote("expected ACK or NAK".into())),
    }
    let mut pack = Vec::new();
    if sideband {
        while let Some(data) = read_pkt(r)? {
            match data.split_first() {
                Some((1, d)) => pack.extend_from_slice(d),
                Some((2, _)) => {}
                Some((3, m)) => {
                    return Err(WireError::Remote(
                        String::from_utf8_lossy(m).trim().to_string(),
                    ))
                }
                _ => return Err(WireError::Remote("malformed side-band packet".into())),
            }
            if pack.len() > MAX_TAG_PACK {
                return Err(WireError::Unsupported(
                    "the pack is larger than a few tag objects".into(),
                ));
            }
        }
    } else {
        r.take(MAX_TAG_PACK as u64 + 1)
            .read_to_end(&mut pack)
            .map_err(io_err)?;
        if pack.len() > MAX_TAG_PACK {
            return Err(WireError::Unsupported(
                "the pack is larger than a few tag objects".into(),
            ));
        }
    }
    if !pack.starts_with(b"PACK") {
        return Err(WireError::Remote("the server sent no pack".into()));
    }
    Ok(pack)
}

fn io_err(e: std::io::Error) -> WireError {
    WireError::Remote(format!("connection failed: {e}"))
}

fn connect(host: &str, port: u16) -> Result<TcpStream, WireError> {
    let s = TcpStream::connect((host, port))
        .map_err(|e| WireError::Remote(format!("cannot connect to {host}:{port}: {e}")))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(600)));
    Ok(s)
}

/// One pkt-line.
fn pkt(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:04x}", data.len() + 4).into_bytes();
    v.extend_from_slice(data);
    v
}

/// Read one pkt-line; `None` for a flush-pkt.
fn read_pkt(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| WireError::Remote(format!("the server closed the connection early: {e}")))?;
    let n = std::str::from_utf8(&len)
        .ok()
        .and_then(|s| usize::from_str_radix(s, 16).ok())
        .ok_or_else(|| WireError::Remote(format!("malformed pkt-line length {len:?}")))?;
    match n {
        0 => Ok(None),
        1..=3 => Err(WireError::Remote(format!("unexpected pkt-line {n:04x}"))),
        _ => {
            let mut buf = vec![0u8; n - 4];
            r.read_exact(&mut buf).map_err(io_err)?;
            if let Some(rest) = buf.strip_prefix(b"ERR ") {
                return Err(WireError::Remote(
                    String::from_utf8_lossy(rest).trim().to_string(),
                ));
            }
            Ok(Some(buf))
        }
    }
}

/// The advertised ids of the refs in `dels` (others are skipped as they stream by), and
/// the capabilities.
fn read_advertisement(
    r: &mut impl BufRead,
    dels: &[Delete],
) -> Result<(HashMap<String, String>, Vec<String>), WireError> {
    let wanted: HashMap<&str, ()> = dels.iter().map(|d| (d.refname.as_str(), ())).collect();
    read_advertisement_where(r, &|name| wanted.contains_key(name))
}

/// The advertised ids of the refs `keep` accepts, and the capabilities.
fn read_advertisement_where(
    r: &mut impl BufRead,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(HashMap<String, String>, Vec<String>), WireError> {
    let mut refs = HashMap::new();
    let mut caps = Vec::new();
    let mut first = true;
    while let Some(line) = read_pkt(r)? {
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let (main, cap) = match line.iter().position(|b| *b == 0) {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if first {
            first = false;
            if main == b"version 1" {
                first = true;
                continue;
            }
            if let Some(c) = cap {
                caps = String::from_utf8_lossy(c)
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
        let main = String::from_utf8_lossy(main);
        if let Some((oid, name)) = main.split_once(' ') {
            if keep(name) {
                refs.insert(name.to_string(), oid.to_string());
            }
        }
    }
    Ok((refs, caps))
}

/// Sort `dels` into gone / changed / to delete, and build the command list (empty if
/// there is nothing to send).
fn plan(
    refs: &HashMap<String, String>,
    caps: &[String],
    dels: &[Delete],
) -> Result<(DeleteReport, Vec<u8>), WireError> {
    let has = |c: &str| caps.iter().any(|x| x == c);
    for need in ["report-status", "delete-refs", "atomic"] {
        if !has(need) {
            return Err(WireError::Unsupported(format!(
                "the server does not offer `{need}`"
            )));
        }
    }
    if caps
        .iter()
        .any(|c| c.starts_with("object-format=") && c != "object-format=sha1")
    {
        return Err(WireError::Unsupported("a non-SHA-1 repository".into()));
    }
    let mut report = DeleteReport::default();
    let mut body = Vec::new();
    for d in dels {
        match refs.get(&d.refname) {
            None => report.gone.push(d.refname.clone()),
            Some(oid) if *oid != d.old => report.changed.push(d.refname.clone()),
            Some(_) => {
                let mut line = format!("{} {ZERO} {}", d.old, d.refname).into_bytes();
                if report.deleted.is_empty() {
                    line.push(0);
                    line.extend_from_slice(format!("report-status atomic {AGENT}").as_bytes());
                }
                line.push(b'\n');
                body.extend_from_slice(&pkt(&line));
                report.deleted.push(d.refname.clone());
            }
        }
    }
    if !body.is_empty() {
        body.extend_from_slice(b"0000");
    }
    Ok((report, body))
}

/// Read the advertisement, send the commands, read the report.
fn converse(
    r: &mut impl BufRead,
    w: &mut impl Write,
    dels: &[Delete],
) -> Result<DeleteReport, WireError> {
    let (refs, caps) = read_advertisement(r, dels)?;
    let (report, body) = plan(&refs, &caps, dels)?;
    if body.is_empty() {
        // Nothing to do: a flush-pkt ends the session.
        let _ = w.write_all(b"0000");
        let _ = w.flush();
        return Ok(report);
    }
    w.write_all(&body).map_err(io_err)?;
    w.flush().map_err(io_err)?;
    read_status(r, report)
}

/// Read `report-status`: `unpack ok`, then `ok <ref>` / `ng <ref> <why>` lines.
fn read_status(r: &mut impl BufRead, report: DeleteReport) -> Result<DeleteReport, WireError> {
    let mut unpack = None;
    let mut ng = Vec::new();
    let mut ok = 0usize;
    while let Some(line) = read_pkt(r)? {
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(u) = line.strip_prefix("unpack ") {
            unpack = Some(u.to_string());
        } else if line.starts_with("ok ") {
            ok += 1;
        } else if let Some(n) = line.strip_prefix("ng ") {
            ng.push(n.to_string());
        }
    }
    match unpack.as_deref() {
        Some("ok") => {}
        Some(other) => return Err(WireError::Rejected(format!("unpack {other}"))),
        None => return Err(WireError::Remote("no report from the server".into())),
    }
    if !ng.is_empty() {
        let n = ng.len();
        ng.truncate(3);
        return Err(WireError::Rejected(format!(
            "{n} ref(s) refused, so none was deleted (atomic): {}",
            ng.join("; ")
        )));
    }
    if ok != report.deleted.len() {
        return Err(WireError::Remote(format!(
            "the server confirmed {ok} of {} deletions",
            report.deleted.len()
        )));
    }
    Ok(report)
}

/// One HTTP/1.1 request (`Connection: close`); the body of a 200 response.
fn http(
    host: &str,
    port: u16,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Vec<u8>, WireError> {
    let mut s = connect(host, port)?;
    let host_hdr = if port == 80 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let service = if target.contains("upload-pack") {
        "git-upload-pack"
    } else {
        "git-receive-pack"
    };
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host_hdr}\r\nUser-Agent: {}\r\nConnection: close\r\nGit-Protocol: version=0\r\n",
        AGENT.trim_start_matches("agent=")
    );
    if let Some(a) = auth {
        let a = a.strip_prefix("Authorization:").unwrap_or(a).trim();
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/x-{service}-request\r\nAccept: application/x-{service}-result\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(io_err)?;
    if let Some(b) = body {
        s.write_all(b).map_err(io_err)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io_err)?;
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> Result<Vec<u8>, WireError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| WireError::Remote("malformed HTTP response".into()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| WireError::Remote("malformed HTTP status line".into()))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    match status {
        200 => {}
        401 | 403 => return Err(WireError::Auth(format!("HTTP {status}"))),
        300..=399 => {
            return Err(WireError::Unsupported(format!(
                "HTTP {status} redirect (the git CLI follows it)"
            )))
        }
        _ => return Err(WireError::Remote(format!("HTTP {status}"))),
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if !chunked {
        if let Some(n) = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            return Ok(body[..n.min(body.len())].to_vec());
        }
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| WireError::Remote("malformed chunked HTTP body".into()))?;
        let size_s = String::from_utf8_lossy(&rest[..nl]);
        let size = usize::from_str_radix(size_s.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| WireError::Remote("malformed chunk size".into()))?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            return Err(WireError::Remote("truncated chunked HTTP body".into()));
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// `git receive-pack PATH`, with its stdin and stdout piped and `stderr` as given.
fn local_receive_pack(
    path: &std::path::Path,
    stderr: Stdio,
) -> Result<std::process::Child, WireError> {
    Command::new(git_program())
        .arg("receive-pack")
        .arg(path)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| WireError::Remote(format!("cannot run `git receive-pack`: {e}")))
}

/// A `git://` connection that asked for `git-receive-pack PATH`: (the stream to read
/// from, a handle to write to).
fn daemon_receive_pack(
    host: &str,
    port: u16,
    path: &str,
) -> Result<(TcpStream, TcpStream), WireError> {
    let stream = connect(host, port)?;
    let mut w = stream
        .try_clone()
        .map_err(|e| WireError::Remote(e.to_string()))?;
    let host_arg = if port == 9418 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let req = format!("git-receive-pack {path}\0host={host_arg}\0");
    w.write_all(&pkt(req.as_bytes())).map_err(io_err)?;
    Ok((stream, w))
}

/// `POST …/git-receive-pack` with `body`: the server's report.
fn http_receive_pack(
    host: &str,
    port: u16,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, WireError> {
    http(
        host,
        port,
        "POST",
        &format!("{path}/git-receive-pack"),
        auth,
        Some(body),
    )
}

/// `GET …/info/refs?service=git-receive-pack`: the smart HTTP advertisement.
fn http_advertisement(
    host: &str,
    port: u16,
    path: &str,
    auth: Option<&str>,
) -> Result<Vec<u8>, WireError> {
    http(
        host,
        port,
        "GET",
        &format!("{path}/info/refs?service=git-receive-pack"),
        auth,
        None,
    )
}

/// Smart HTTP puts `# service=git-receive-pack\n` and a flush before the advertisement.
fn skip_http_preamble(r: &mut BufReader<&[u8]>) -> Result<(), WireError> {
    skip_http_preamble_of(r, "git-receive-pack")
}

/// Smart HTTP puts `# service=<service>\n` and a flush before the advertisement.
fn skip_http_preamble_of(r: &mut BufReader<&[u8]>, service: &str) -> Result<(), WireError> {
    match read_pkt(r)? {
        Some(l) if l.starts_with(format!("# service={service}").as_bytes()) => {}
        _ => {
            return Err(WireError::Unsupported(
                "the server does not speak smart HTTP".into(),
            ))
        }
    }
    if read_pkt(r)?.is_some() {
        return Err(WireError::Remote("malformed smart HTTP preamble".into()));
    }
    Ok(())
}

/// The git program to run: `KONDUCTOR_GIT`, else `git` from `PATH` (tests interpose one).
pub(crate) fn git_program() -> String {
    std::env::var("KONDUCTOR_GIT").unwrap_or_else(|_| "git".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn del(name: &str, old: &str) -> Delete {
        Delete {
            refname: name.into(),
            old: old.into(),
        }
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("/srv/x.git").unwrap(),
            Endpoint::Local("/srv/x.git".into())
        );
        assert_eq!(
            Endpoint::parse("git://127.0.0.1:9999/h.git").unwrap(),
            Endpoint::Daemon {
                host: "127.0.0.1".into(),
                port: 9999,
                path: "/h.git".into()
            }
        );
        assert_eq!(
            Endpoint::parse("http://example.com/r.git/").unwrap(),
            Endpoint::Http {
                host: "example.com".into(),
                port: 80,
                path: "/r.git".into()
            }
        );
        for u in ["https://github.com/a/b", "ssh://git@h/x", "git@h:x"] {
            assert!(
                matches!(Endpoint::parse(u), Err(WireError::Unsupported(_))),
                "{u}"
            );
        }
    }

    #[test]
    fn advertisement_keeps_only_wanted_refs_and_plan_sorts_them() {
        let mut adv = Vec::new();
        adv.extend(pkt(format!(
            "{A} refs/tags/x\0report-status delete-refs atomic ofs-delta\n"
        )
        .as_bytes()));
        adv.extend(pkt(format!("{B} refs/tags/y\n").as_bytes()));
        adv.extend(pkt(format!("{A} refs/tags/other\n").as_bytes()));
        adv.extend(b"0000");
        let dels = [
            del("refs/tags/x", A),
            del("refs/tags/y", A),
            del("refs/tags/z", A),
        ];
        let (refs, caps) = read_advertisement(&mut &adv[..], &dels).unwrap();
        assert_eq!(refs.len(), 2, "{refs:?}");
        let (rep, body) = plan(&refs, &caps, &dels).unwrap();
        assert_eq!(rep.deleted, ["refs/tags/x"]);
        assert_eq!(rep.changed, ["refs/tags/y"]);
        assert_eq!(rep.gone, ["refs/tags/z"]);
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(&format!("{A} {ZERO} refs/tags/x\0report-status atomic"))
                && text.ends_with("\n0000"),
            "{text:?}"
        );
        // Without atomic: not ours to do.
        let caps = vec!["report-status".to_string(), "delete-refs".to_string()];
        assert!(matches!(
            plan(&refs, &caps, &dels),
            Err(WireError::Unsupported(_))
        ));
    }

    #[test]
    fn status_report() {
        let rep = DeleteReport {
            deleted: vec!["refs/tags/x".into()],
            ..Default::default()
        };
        let mut ok = pkt(b"unpack ok\n");
        ok.extend(pkt(b"ok refs/tags/x\n"));
        ok.extend(b"0000");
        assert_eq!(read_status(&mut &ok[..], rep.clone()).unwrap(), rep);
        let mut ng = pkt(b"unpack ok\n");
        ng.extend(pkt(b"ng refs/tags/x failed to lock\n"));
        ng.extend(b"0000");
        assert!(matches!(
            read_status(&mut &ng[..], rep.clone()),
            Err(WireError::Rejected(m)) if m.contains("failed to lock")
        ));
        let err = pkt(b"ERR access denied");
        assert!(matches!(
            read_status(&mut &err[..], rep),
            Err(WireError::Remote(m)) if m == "access denied"
        ));
    }

    #[test]
    fn http_responses() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n4;x=1\r\n abc\r\n0\r\n\r\n";
        assert_eq!(parse_http_response(r).unwrap(), b"hello abc");
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_http_response(r).unwrap(), b"abc");
        let r = b"HTTP/1.1 401 Unauthorized\r\n\r\n";
        assert!(matches!(parse_http_response(r), Err(WireError::Auth(_))));
        let r = b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n";
        assert!(matches!(
            parse_http_response(r),
            Err(WireError::Unsupported(_))
        ));
        assert!(parse_http_response(b"garbage").is_err());
    }

    #[test]
    fn upload_request_wants_tags_and_says_its_have() {
        let caps: Vec<String> = ["multi_ack", "side-band-64k", "ofs-delta", "no-progress"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let w = Wants {
            wants: vec![A.into(), B.into()],
            haves: vec![B.into()],
        };
        let (body, sideband) = upload_request(&caps, &w).unwrap();
        assert!(sideband);
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains(&format!(
                "want {A} side-band-64k ofs-delta no-progress agent="
            )) && text.contains(&format!("want {B}\n0000"))
                && text.ends_with(&format!("have {B}\n0009done\n")),
            "{text:?}"
        );
        assert!(
            !text.contains("multi_ack"),
            "no negotiation rounds: {text:?}"
        );
        let sha256 = vec!["object-format=sha256".to_string()];
        assert!(matches!(
            upload_request(&sha256, &w),
            Err(WireError::Unsupported(_))
        ));
    }

    #[test]
    fn pack_response_is_demultiplexed_and_bounded() {
        let mut res = pkt(format!("ACK {B}\n").as_bytes());
        res.extend(pkt(b"\x01PACK\x00\x00"));
        res.extend(pkt(b"\x02counting objects"));
        res.extend(pkt(b"\x01rest"));
        res.extend(b"0000");
        assert_eq!(
            read_pack_response(&mut &res[..], true).unwrap(),
            b"PACK\0\0rest"
        );
        // The server lacks our `have`: it would send the commit and its tree.
        let nak = pkt(b"NAK\n");
        assert!(matches!(
            read_pack_response(&mut &nak[..], true),
            Err(WireError::Unsupported(_))
        ));
        let mut err = pkt(format!("ACK {B}\n").as_bytes());
        err.extend(pkt(b"\x03upload-pack: not our ref"));
        assert!(matches!(
            read_pack_response(&mut &err[..], true),
            Err(WireError::Remote(m)) if m.contains("not our ref")
        ));
        let mut big = pkt(format!("ACK {B}\n").as_bytes());
        let chunk = [vec![1u8], b"PACK".to_vec(), vec![0u8; 65_000]].concat();
        for _ in 0..20 {
            big.extend(pkt(&chunk));
        }
        big.extend(b"0000");
        assert!(matches!(
            read_pack_response(&mut &big[..], true),
            Err(WireError::Unsupported(_))
        ));
        let mut raw = pkt(format!("ACK {B}\n").as_bytes());
        raw.extend(b"PACKraw");
        assert_eq!(
            read_pack_response(&mut &raw[..], false).unwrap(),
            b"PACKraw"
        );
    }
}
