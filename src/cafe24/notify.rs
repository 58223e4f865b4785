//! Sending one notification to Cafe24 (PROTOCOL.md §9): a form-encoded POST (JSON per
//! merchant setting) to `return_noty_url`, `cancel_noty_url` or an external checkout's
//! `return_notification_url`, with a timeout, following no redirects. Success is HTTP
//! 2xx with a body that reads `OK`, or JSON whose `result` is `OK`; anything else is a
//! failure to retry. When and how often to send is the outbox worker's
//! ([`crate::notifications`]); this module never touches the database.

use std::time::Duration;

/// Largest reply body read from Cafe24.
const MAX_REPLY_BYTES: usize = 16 * 1024;

pub use crate::merchant::kinds::NotifyEncoding as Encoding;

/// How one attempt went.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx and a reply that reads `OK`: the HTTP status.
    Delivered(u16),
    /// Anything else; retried on the schedule.
    Failed { status: Option<u16>, error: String },
    /// Not sendable at all (the target is no longer allowed): dead at once.
    Refused(String),
}

/// The HTTP client that sends notifications: one per worker.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl Sender {
    /// A sender whose every POST gives up after `timeout` (connecting: at most 5 s).
    pub fn new(timeout: Duration) -> Result<Sender, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cafe24-komoju/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { http })
    }

    /// POSTs `pairs` to `target_url` once. The target must already have passed the
    /// allow-list (§10); this never follows a redirect.
    pub async fn send(
        &self,
        target_url: &str,
        encoding: Encoding,
        pairs: &[(String, String)],
    ) -> Attempt {
        let request = self.http.post(target_url);
        let request = match encoding {
            Encoding::Json => {
                let map: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                request.json(&map)
            }
            Encoding::Form => request.form(pairs),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Failed {
                    status: None,
                    error: "timeout".into(),
                }
            }
            Err(e) => {
                return Attempt::Failed {
                    status: None,
                    error: format!("connection failed: {}", e.without_url()),
                }
            }
        };
        let status = response.status().as_u16();
        let body = read_limited(response).await;
        if !(200..300).contains(&status) {
            return Attempt::Failed {
                status: Some(status),
                error: format!("HTTP {status}"),
            };
        }
        if reads_ok(&body) {
            Attempt::Delivered(status)
        } else {
            Attempt::Failed {
                status: Some(status),
                error: "reply did not say OK".into(),
            }
        }
    }
}

async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_REPLY_BYTES {
            break;
        }
    }
    body
}

/// True for a body `OK` (any case, surrounding white space) or JSON `{"result":"OK"}`.
pub fn reads_ok(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.eq_ignore_ascii_case("ok") {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("result")
                .and_then(|r| r.as_str())
                .map(|r| r.eq_ignore_ascii_case("ok"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_replies_count() {
        assert!(reads_ok(b"OK"));
        assert!(reads_ok(b" ok\n"));
        assert!(reads_ok(br#"{"result":"OK"}"#));
        assert!(!reads_ok(br#"{"result":"FAIL"}"#));
        assert!(!reads_ok(b""));
        assert!(!reads_ok(b"NOT OK"));
    }
}
