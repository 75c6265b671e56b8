//! Headless Chromium for the end-to-end tests (std only): load a local HTML file and read
//! back the DOM after its scripts ran plus its console errors, or take a screenshot.
//!
//! Tests should skip (not fail) when [`chromium`] returns `None`.
//!
//! What this Chromium prints (checked by experiment with Chromium 156): with
//! `--enable-logging=stderr --v=0`, every console message of a web page appears on stderr
//! as one line like
//!
//! ```text
//! [1234:1234:1122/143357.561062:INFO:CONSOLE:5] "Uncaught Error: boom", source: file:///tmp/t.html (5)
//! ```
//!
//! always at level `INFO`, whatever the page used: `console.log`, `console.warn` and
//! `console.error` cannot be told apart (Chromium logs web content at INFO; only built-in
//! pages keep their level). So [`load`] counts as errors the lines that are errors by their
//! text: uncaught exceptions and promise rejections (`Uncaught …`), Content-Security-Policy
//! violations (a blocked load, inline script or style), failed resource loads, and any
//! console line logged at `ERROR` (older or future builds). A plain `console.error(…)` call
//! is not detectable this way.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one Chromium run may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `/usr/bin/chromium`, or `chromium` on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if executable(fixed) {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| executable(p))
}

/// Load a local HTML file headless; return (dom_after_scripts, console_errors).
///
/// Panics if Chromium is missing, fails to start, or runs longer than [`TIMEOUT`].
pub fn load(html: &Path) -> (String, Vec<String>) {
    let run = run(html, &["--dump-dom".to_string()]);
    assert!(
        run.status.success() && !run.stdout.trim().is_empty(),
        "chromium --dump-dom {} failed ({}):\n{}",
        html.display(),
        run.status,
        tail(&run.stderr)
    );
    let errors = console_errors(&run.stderr);
    (run.stdout, errors)
}

/// Screenshot a local HTML file to PNG (1400×2400 window, no scrollbars).
///
/// Panics if Chromium is missing, runs longer than [`TIMEOUT`], or writes no PNG.
pub fn screenshot(html: &Path, png: &Path) {
    let png_abs = absolute(png);
    let _ = fs::remove_file(&png_abs);
    let run = run(
        html,
        &[
            format!("--screenshot={}", png_abs.display()),
            "--window-size=1400,2400".to_string(),
            "--hide-scrollbars".to_string(),
        ],
    );
    let written = fs::metadata(&png_abs).map(|m| m.len()).unwrap_or(0);
    assert!(
        written > 0,
        "chromium wrote no screenshot to {} ({}):\n{}",
        png_abs.display(),
        run.status,
        tail(&run.stderr)
    );
}

/// The console lines of a Chromium stderr log that are errors (see the module docs), as
/// `message (source)` without the log prefix.
pub fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .filter(|l| {
            l.contains("ERROR:CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Content Security Policy")
                || l.contains("Failed to load resource")
        })
        .map(|l| match l.find("] ") {
            Some(i) if l[..i].contains("CONSOLE") => l[i + 2..].trim().to_string(),
            _ => l.trim().to_string(),
        })
        .collect()
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn run(html: &Path, extra: &[String]) -> Run {
    let exe =
        chromium().expect("chromium not found (tests should check browser::chromium() first)");
    let scratch = Scratch::new();
    let profile = scratch.0.join("profile");
    let (out_path, err_path) = (scratch.0.join("stdout"), scratch.0.join("stderr"));
    let mut cmd = Command::new(exe);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(file_url(html))
    .stdin(Stdio::null())
    // Files, not pipes: a helper process that outlives the browser can't block us.
    .stdout(File::create(&out_path).expect("scratch stdout"))
    .stderr(File::create(&err_path).expect("scratch stderr"));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so the browser and its helpers can be ended together.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().expect("start chromium");
    let pid = child.id();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for chromium") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // End whatever is left of the browser's process group (all of it on a timeout).
    kill_group(pid);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium ran longer than {}s on {}; killed it:\n{}",
                TIMEOUT.as_secs(),
                html.display(),
                tail(&fs::read_to_string(&err_path).unwrap_or_default())
            );
        }
    };
    Run {
        status,
        stdout: String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned(),
    }
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {}

/// A fresh scratch directory (browser profile and logs), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "konductor-chromium-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(dir.join("profile")).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    })
}

/// `file://` URL of a local path, percent-encoded.
fn file_url(p: &Path) -> String {
    let abs = absolute(p);
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        abs.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = abs.to_string_lossy().replace('\\', "/").into_bytes();
    let mut url = String::from("file://");
    if !bytes.starts_with(b"/") {
        url.push('/');
    }
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            let _ = write!(url, "%{b:02X}");
        }
    }
    url
}

fn executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The last lines of a log, for panic messages, without the usual container noise.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.contains("dbus") && !l.contains("/usr/bin/chromium: "))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
