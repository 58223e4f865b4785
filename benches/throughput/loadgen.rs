//! The load generator: pre-built HTTP/1.1 requests (signed before the clock starts) sent
//! over keep-alive connections, one request in flight per connection, by the bench
//! process: never the service's process or runtime. It reads only what it needs of each
//! reply (status line, `Content-Length`, body), so its own cost per request stays a few
//! microseconds and the figure measured is the service's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One reply as the generator saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// From the last byte of the request written to the last byte of the reply read.
    pub latency: Duration,
    /// Kept only when the run asked for bodies.
    pub body: Vec<u8>,
}

/// What a run measured.
#[derive(Debug)]
pub struct Run {
    /// From the first request written to the last reply read.
    pub elapsed: Duration,
    /// In the order of the requests given.
    pub replies: Vec<Reply>,
}

impl Run {
    /// Requests per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.replies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Panics unless every reply has `status`.
    pub fn expect_status(&self, status: u16, what: &str) {
        if let Some((i, r)) = self
            .replies
            .iter()
            .enumerate()
            .find(|(_, r)| r.status != status)
        {
            panic!(
                "{what}: request {i} answered {} instead of {status}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
}

/// A `POST path` with `body`, as bytes ready to write.
pub fn post(
    host: &SocketAddr,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `requests` to `targets` over `connections` keep-alive connections per target
/// (connection `k` talks to target `k % targets.len()`), each taking the next request
/// as soon as its previous reply is in. Replies come back in request order. With
/// `keep_bodies` the reply bodies are kept (the checkout's `payment_url`).
pub async fn run(
    targets: &[SocketAddr],
    connections: usize,
    requests: Vec<Vec<u8>>,
    keep_bodies: bool,
) -> Run {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let total = connections * targets.len();
    let mut streams = Vec::with_capacity(total);
    for k in 0..total {
        let target = targets[k % targets.len()];
        let stream = TcpStream::connect(target)
            .await
            .unwrap_or_else(|e| panic!("connect {target}: {e}"));
        let _ = stream.set_nodelay(true);
        streams.push(stream);
    }
    let started = Instant::now();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let (requests, next) = (requests.clone(), next.clone());
            tokio::spawn(connection(stream, requests, next, keep_bodies))
        })
        .collect();
    let mut replies: Vec<Option<Reply>> = vec![None; requests.len()];
    for task in tasks {
        for (i, reply) in task.await.unwrap_or_else(|e| panic!("{e}")) {
            replies[i] = Some(reply);
        }
    }
    let elapsed = started.elapsed();
    Run {
        elapsed,
        replies: replies
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|| panic!("request {i} never answered")))
            .collect(),
    }
}

async fn connection(
    mut stream: TcpStream,
    requests: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
    keep_bodies: bool,
) -> Vec<(usize, Reply)> {
    let mut done = Vec::new();
    let mut buf = Vec::with_capacity(8192);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(request) = requests.get(i) else {
            break;
        };
        stream
            .write_all(request)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        let sent = Instant::now();
        let (status, body) = read_reply(&mut stream, &mut buf).await;
        let latency = sent.elapsed();
        done.push((
            i,
            Reply {
                status,
                latency,
                body: if keep_bodies || status >= 300 {
                    body
                } else {
                    Vec::new()
                },
            },
        ));
    }
    done
}

/// Reads one reply with a `Content-Length` body; returns its status and body.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head =
                std::str::from_utf8(&buf[..end]).unwrap_or_else(|e| panic!("reply head: {e}"));
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("reply status line: {head:?}"));
            let length: usize = head
                .split("\r\n")
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("reply without Content-Length: {head:?}"));
            let total = end + 4 + length;
            while buf.len() < total {
                fill(stream, buf).await;
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return (status, body);
        }
        fill(stream, buf).await;
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let n = stream
        .read(&mut chunk)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert!(n > 0, "the service closed the connection");
    buf.extend_from_slice(&chunk[..n]);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
