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
    /// The `Location` header, kept only when the run asked for bodies.
    pub location: Option<String>,
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

/// A `GET path` with `headers`, as bytes ready to write.
pub fn get(host: &SocketAddr, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
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
        let Parsed {
            status,
            body,
            location,
            ..
        } = read_reply(&mut stream, &mut buf).await;
        let latency = sent.elapsed();
        done.push((
            i,
            Reply {
                status,
                latency,
                body: if keep_bodies || status >= 400 {
                    body
                } else {
                    Vec::new()
                },
                location: location.filter(|_| keep_bodies),
            },
        ));
    }
    done
}

/// Reads one reply with a `Content-Length` body. Panics when the connection fails.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Parsed {
    try_read_reply(stream, buf)
        .await
        .unwrap_or_else(|e| panic!("reading a reply: {e}"))
}

/// One reply: its status, body, `Location` header, and whether the server closes the
/// connection after it (`Connection: close`).
struct Parsed {
    status: u16,
    body: Vec<u8>,
    location: Option<String>,
    close: bool,
}

/// [`read_reply`], with the connection's failure (or its end) as an error.
async fn try_read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Parsed> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head =
                std::str::from_utf8(&buf[..end]).unwrap_or_else(|e| panic!("reply head: {e}"));
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("reply status line: {head:?}"));
            let header = |wanted: &str| {
                head.split("\r\n").find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case(wanted)
                        .then(|| value.trim().to_owned())
                })
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("reply without Content-Length: {head:?}"));
            let parsed = Parsed {
                status,
                body: Vec::new(),
                location: header("location"),
                close: header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
            };
            let total = end + 4 + length;
            while buf.len() < total {
                fill(stream, buf).await?;
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok(Parsed { body, ..parsed });
        }
        fill(stream, buf).await?;
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// A kept-alive connection and what it has read past its last reply.
type Idle = (TcpStream, Vec<u8>);

/// Sends `requests` open loop, as a burst arrives: request `i` is due `i / rate` seconds
/// after the start whether or not earlier ones were answered, over keep-alive
/// connections opened as needed, at most `max_connections` at once (a request finding
/// none free waits for one). A latency runs from when its request was due to the last
/// byte of its reply, so the waits of the generator count too. A connection is kept for
/// the next request as an HTTP/1.1 client keeps it (a proxy's upstream pool, Cafe24's
/// and KOMOJU's HTTP clients): whatever the status, unless the reply said
/// `Connection: close`; a connection that failed is replaced, and its request sent again
/// on a new one. Replies come back in request order.
pub async fn paced(
    target: SocketAddr,
    rate: f64,
    requests: Vec<Vec<u8>>,
    max_connections: usize,
) -> Run {
    let idle: Arc<std::sync::Mutex<Vec<Idle>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    let mut due_requests = pace(started.into_std(), rate, requests);
    while let Some((due, request)) = due_requests.recv().await {
        let due = tokio::time::Instant::from_std(due);
        let (idle, permits) = (idle.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            loop {
                let reused = idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let (mut stream, mut buf) = match reused {
                    Some(conn) => conn,
                    None => {
                        let s = TcpStream::connect(target)
                            .await
                            .unwrap_or_else(|e| panic!("connect {target}: {e}"));
                        let _ = s.set_nodelay(true);
                        (s, Vec::with_capacity(8192))
                    }
                };
                if stream.write_all(&request).await.is_err() {
                    continue;
                }
                let Ok(Parsed {
                    status,
                    body,
                    close,
                    ..
                }) = try_read_reply(&mut stream, &mut buf).await
                else {
                    continue;
                };
                if !close {
                    idle.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((stream, buf));
                }
                return Reply {
                    status,
                    latency: due.elapsed(),
                    body: if status >= 400 { body } else { Vec::new() },
                    location: None,
                };
            }
        }));
    }
    let mut replies = Vec::with_capacity(tasks.len());
    for task in tasks {
        replies.push(task.await.unwrap_or_else(|e| panic!("{e}")));
    }
    Run {
        elapsed: started.elapsed(),
        replies,
    }
}

/// Hands each of `requests` over when it is due (`i / rate` seconds after `started`),
/// with its due time, from a thread of its own: `std::thread::sleep` wakes within tens
/// of microseconds, where tokio's timer rounds every wait up to a whole millisecond and
/// so released a burst in lumps of `rate / 1000` requests at once, all of them meeting a
/// full limit together: arrivals no real set of senders makes.
fn pace(
    started: std::time::Instant,
    rate: f64,
    requests: Vec<Vec<u8>>,
) -> tokio::sync::mpsc::UnboundedReceiver<(std::time::Instant, Vec<u8>)> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for (i, request) in requests.into_iter().enumerate() {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            if sender.send((due, request)).is_err() {
                return;
            }
        }
    });
    receiver
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
