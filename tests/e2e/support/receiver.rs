//! A loopback HTTP receiver for notifications: it records every request (method, path,
//! headers, body) and answers with a status the test sets. It can be stopped and started
//! again on the same port (a target that is down, then back).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Read one HTTP/1.1 request (with a `Content-Length` body) from `stream`.
pub fn read_request(stream: &TcpStream) -> Option<Request> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
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
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Write a JSON answer and close.
pub fn answer(mut stream: TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The receiver, serving until dropped or stopped.
pub struct Receiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// The status it answers with (200 unless set).
    pub status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    running: bool,
}

impl Receiver {
    /// Listen on a free loopback port.
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    /// Listen on `port` (0: a free one).
    pub fn start_on(port: u16) -> Receiver {
        let mut r = Receiver {
            port,
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            stop: Arc::new(AtomicBool::new(false)),
            running: false,
        };
        r.listen();
        r
    }

    fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("bind loopback");
        self.port = listener.local_addr().unwrap().port();
        self.stop = Arc::new(AtomicBool::new(false));
        let (requests, status, stop) = (
            self.requests.clone(),
            self.status.clone(),
            self.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (requests, status) = (requests.clone(), status.clone());
                std::thread::spawn(move || {
                    if let Some(req) = read_request(&stream) {
                        requests.lock().unwrap().push(req);
                        answer(stream, status.load(Ordering::SeqCst), "{}");
                    }
                });
            }
        });
        self.running = true;
    }

    /// Stop listening (the port then refuses connections).
    pub fn stop(&mut self) {
        if self.running {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            self.running = false;
            // Let the accept loop drop the listener.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Listen again on the same port.
    pub fn start_again(&mut self) {
        self.listen();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn taken(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}
