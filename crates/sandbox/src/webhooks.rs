//! Webhooks like KOMOJU's (reference §4): every payment change of a secret key that has a
//! registered endpoint becomes one event, `{id, type, resource:"event", data:<Payment>,
//! created_at, reason}`, serialized once, signed with the lowercase hex HMAC-SHA256 of the
//! body under the endpoint's webhook secret, and POSTed with KOMOJU's headers on its own
//! spawned tokio task, retried after the configured delays on a non-2xx answer or a
//! connection error.
//!
//! Events are rendered under the state lock, in the same critical section as the change
//! they announce (see `Sandbox::transition`), so `data` is the payment exactly as it was
//! at that moment; the network work happens later, on tasks, without the lock. A task is
//! spawned on the caller's tokio runtime (an actix worker, a test's runtime); a caller
//! outside any runtime gets a short-lived thread with its own. Nothing ever blocks the
//! calling thread, so the sandbox can deliver to a route of the very server it is mounted
//! in.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{oneshot, watch};

use super::clock::{self, format_time, Time};
use super::Sandbox;

/// Per attempt, connecting and reading the answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RETRY_DELAYS_SECS: [u64; 5] = [1, 2, 4, 8, 16];

/// One delivery attempt of one event, as [`Sandbox::deliveries`] reports it.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// The event's `id`, also sent as `X-Komoju-ID`; the same across retries and
    /// redeliveries.
    pub event_id: String,
    /// The event's `type`, also sent as `X-Komoju-Event`, e.g. `"payment.captured"`.
    pub event_type: String,
    /// Where it was POSTed.
    pub url: String,
    /// The exact body bytes sent (UTF-8 JSON).
    pub body: String,
    /// The `X-Komoju-Signature` sent.
    pub signature: String,
    /// The HTTP status answered; 0 for a connection error or a timeout.
    pub status: u16,
    /// 1 for the first send, then 2, 3, … for retries and redeliveries.
    pub attempt: u32,
}

struct Endpoint {
    url: String,
    secret: String,
}

/// An event as rendered once: everything needed to send it again byte for byte.
pub(crate) struct Event {
    id: String,
    event_type: String,
    url: String,
    body: String,
    signature: String,
}

/// One unit of "not idle": held by every queued event and every running delivery task,
/// and released when dropped (task finished or cancelled, queue dropped).
pub(crate) struct Pending(Arc<watch::Sender<usize>>);

impl Pending {
    fn new(counter: &Arc<watch::Sender<usize>>) -> Pending {
        counter.send_modify(|n| *n += 1);
        Pending(Arc::clone(counter))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// An event ready to be handed to a delivery task.
pub(crate) struct Outgoing {
    event: Arc<Event>,
    pending: Pending,
}

/// Webhook configuration and bookkeeping; a part of [`State`], so behind the same lock.
pub(crate) struct Registry {
    /// By secret key.
    endpoints: HashMap<String, Endpoint>,
    retry_delays: Vec<Duration>,
    paused: bool,
    /// Events created while paused, oldest first.
    queue: VecDeque<Outgoing>,
    /// Every event ever created, by id, for [`Sandbox::redeliver`].
    events: HashMap<String, Arc<Event>>,
    /// Attempts started so far, by event id.
    attempts: HashMap<String, u32>,
    deliveries: Vec<WebhookDelivery>,
    /// Queued events plus running delivery tasks.
    pending: Arc<watch::Sender<usize>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            endpoints: HashMap::new(),
            retry_delays: DEFAULT_RETRY_DELAYS_SECS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            paused: false,
            queue: VecDeque::new(),
            events: HashMap::new(),
            attempts: HashMap::new(),
            deliveries: Vec::new(),
            pending: Arc::new(watch::channel(0).0),
        }
    }
}

/// The envelope, fields in KOMOJU's order (SDK `models/event.ts`; the WooCommerce
/// plugin's webhook fixtures); `data` serializes exactly as `GET /api/v1/payments/{id}`
/// does.
#[derive(Serialize)]
struct Envelope<'a, D: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    resource: &'static str,
    data: &'a D,
    created_at: String,
    reason: Option<String>,
}

/// A `ping` event: no payment, `data` is `{}`, no `reason`.
#[derive(Serialize)]
struct PingEnvelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    resource: &'static str,
    data: serde_json::Map<String, serde_json::Value>,
    created_at: String,
}

impl Registry {
    /// Sets (or replaces) the endpoint of objects owned by `owner`.
    pub(crate) fn register(&mut self, owner: &str, url: &str, secret: &str) {
        self.endpoints.insert(
            owner.to_string(),
            Endpoint {
                url: url.to_string(),
                secret: secret.to_string(),
            },
        );
    }

    /// Whether `owner` has a webhook endpoint.
    pub(crate) fn has_endpoint(&self, owner: &str) -> bool {
        self.endpoints.contains_key(owner)
    }

    /// Renders, signs and records an event of `owner`'s payment (`data`, a payment
    /// view), or `None` when `owner` has no webhook endpoint.
    pub(crate) fn create<D: Serialize>(
        &mut self,
        owner: &str,
        event_type: &str,
        data: &D,
        now: Time,
    ) -> Option<Outgoing> {
        self.create_with(owner, event_type, |id| {
            serde_json::to_string(&Envelope {
                id,
                kind: event_type,
                resource: "event",
                data,
                created_at: format_time(&now),
                reason: None,
            })
        })
    }

    /// Renders, signs and records a `ping` event for `owner`'s endpoint, or `None` when
    /// `owner` has none.
    fn create_ping(&mut self, owner: &str, now: Time) -> Option<Outgoing> {
        self.create_with(owner, "ping", |id| {
            serde_json::to_string(&PingEnvelope {
                id,
                kind: "ping",
                resource: "event",
                data: serde_json::Map::new(),
                created_at: format_time(&now),
            })
        })
    }

    /// Signs and records the body `render` makes for a fresh event id.
    fn create_with(
        &mut self,
        owner: &str,
        event_type: &str,
        render: impl FnOnce(&str) -> serde_json::Result<String>,
    ) -> Option<Outgoing> {
        let endpoint = self.endpoints.get(owner)?;
        let id = event_id();
        let body = render(&id)
            .map_err(|e| log::error!("komoju sandbox: cannot render event {id}: {e}"))
            .ok()?;
        let event = Arc::new(Event {
            signature: sign(&endpoint.secret, body.as_bytes()),
            url: endpoint.url.clone(),
            event_type: event_type.to_string(),
            id: id.clone(),
            body,
        });
        self.events.insert(id, Arc::clone(&event));
        Some(Outgoing {
            event,
            pending: Pending::new(&self.pending),
        })
    }

    /// Sends `event` now (the caller dispatches it once the lock is released), or queues
    /// it while paused.
    pub(crate) fn release(&mut self, event: Outgoing) -> Option<Outgoing> {
        if self.paused {
            self.queue.push_back(event);
            None
        } else {
            Some(event)
        }
    }
}

/// 25 characters of `[a-z0-9]`: "A unique 25-character alphanumeric resource
/// identifier" (SDK `docs/Models/Event.md`).
fn event_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..25)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Lowercase hex of HMAC-SHA256(key = `secret`, message = `body`).
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One client for every sandbox: no redirects, no proxy, no connection pool (a pooled
/// connection would belong to the runtime that opened it, and deliveries run on many).
fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(ATTEMPT_TIMEOUT)
                .pool_max_idle_per_host(0)
                .no_proxy()
                .build()
                .map_err(|e| log::error!("komoju sandbox: no HTTP client for webhooks: {e}"))
                .ok()
        })
        .as_ref()
}

/// Runs `task` on the current tokio runtime, or, outside any, on a thread of its own.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(task);
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("komoju-sandbox-webhook".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(task),
                Err(e) => log::error!("komoju sandbox: no runtime for a webhook: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::error!("komoju sandbox: no thread for a webhook: {e}");
    }
}

/// One POST of `event`; the status, or 0 when there was no complete answer in time.
async fn post(event: &Event) -> u16 {
    let Some(client) = client() else {
        return 0;
    };
    let sent = client
        .post(&event.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "Komoju-Webhook")
        .header("X-Komoju-ID", &event.id)
        .header("X-Komoju-Event", &event.event_type)
        .header("X-Komoju-Signature", &event.signature)
        .timeout(ATTEMPT_TIMEOUT)
        .body(event.body.clone())
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            log::info!(
                "komoju sandbox: webhook {} to {} failed: {e}",
                event.id,
                event.url
            );
            return 0;
        }
    };
    let status = answer.status().as_u16();
    match answer.bytes().await {
        Ok(_) => status,
        Err(e) => {
            log::info!(
                "komoju sandbox: webhook {} to {}: answer {status} not read: {e}",
                event.id,
                event.url
            );
            0
        }
    }
}

fn succeeded(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A delivery task: the first attempt (its status reported on `first`), then, when
/// `retry`, one more attempt after each configured delay until one succeeds.
async fn deliver(
    sandbox: Sandbox,
    event: Arc<Event>,
    pending: Pending,
    first: Option<oneshot::Sender<u16>>,
    retry: bool,
) {
    let _pending = pending;
    let mut status = sandbox.attempt(&event).await;
    if let Some(first) = first {
        let _ = first.send(status);
    }
    if !retry {
        return;
    }
    let delays = sandbox.lock().webhooks.retry_delays.clone();
    let mut delays = delays.into_iter();
    while !succeeded(status) {
        let Some(delay) = delays.next() else {
            log::warn!(
                "komoju sandbox: gave up on webhook {} ({}) to {}",
                event.id,
                event.event_type,
                event.url
            );
            return;
        };
        tokio::time::sleep(delay).await;
        status = sandbox.attempt(&event).await;
    }
}

impl Sandbox {
    /// Registers the webhook endpoint for objects owned by `secret_key` (the merchant's
    /// KOMOJU secret key): every payment change of that key's payments is POSTed to `url`,
    /// signed with `webhook_secret`. Calling again replaces it (for events created from
    /// then on; an event keeps the URL and signature it was created with). Over HTTP the
    /// same is `POST /api/v1/webhook_endpoints` (see the crate documentation).
    pub fn set_webhook(&self, secret_key: &str, url: &str, webhook_secret: &str) {
        self.lock()
            .webhooks
            .register(secret_key, url, webhook_secret);
    }

    /// Sends a signed `ping` event, `{"id","type":"ping","resource":"event","data":{},
    /// "created_at"}`, to the endpoint registered for `secret_key`, through the same path
    /// as payment events: signed with the endpoint's secret, queued while paused, retried,
    /// reported by [`Sandbox::deliveries`]. Returns at once (the delivery runs on a task);
    /// false when the key has no endpoint. Over HTTP the same is
    /// `POST /api/v1/webhook_endpoints/ping` (see the crate documentation).
    pub fn send_ping(&self, secret_key: &str) -> bool {
        let now = clock::now();
        let outgoing = {
            let mut state = self.lock();
            let Some(event) = state.webhooks.create_ping(secret_key, now) else {
                return false;
            };
            state.webhooks.release(event)
        };
        self.dispatch(outgoing.into_iter().collect());
        true
    }

    /// Delays between automatic redeliveries after a non-2xx answer or a connection error.
    /// Default `[1s, 2s, 4s, 8s, 16s]`; an empty vec disables redelivery. A delivery reads
    /// the delays when its first attempt is done.
    pub fn set_webhook_retry_delays(&self, delays: Vec<Duration>) {
        self.lock().webhooks.retry_delays = delays;
    }

    /// While paused, events are queued (not sent); [`Sandbox::flush_webhooks`] sends the
    /// queue in order. Unpausing sends what is queued, in order, on a spawned task (each
    /// event's first attempt awaited before the next is sent).
    pub fn set_webhooks_paused(&self, paused: bool) {
        let release = {
            let mut state = self.lock();
            state.webhooks.paused = paused;
            !paused && !state.webhooks.queue.is_empty()
        };
        if release {
            let sandbox = self.clone();
            spawn(async move {
                sandbox.flush_webhooks().await;
            });
        }
    }

    /// Sends the queued events in order, awaiting each delivery's first attempt, and
    /// returns their statuses (0 for a connection error). Failed ones are retried in the
    /// background as usual.
    pub async fn flush_webhooks(&self) -> Vec<u16> {
        let mut statuses = Vec::new();
        loop {
            let next = self.lock().webhooks.queue.pop_front();
            let Some(outgoing) = next else {
                return statuses;
            };
            statuses.push(self.send_now(outgoing, true).await);
        }
    }

    /// Every delivery attempt so far, in the order they finished.
    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().webhooks.deliveries.clone()
    }

    /// Sends the recorded event `event_id` once more, now, to the URL it was first sent to,
    /// with the same body and headers (as KOMOJU's redelivery would); not retried. Returns
    /// the HTTP status, 0 on connection error or when there is no such event.
    pub async fn redeliver(&self, event_id: &str) -> u16 {
        let outgoing = {
            let state = self.lock();
            state.webhooks.events.get(event_id).map(|event| Outgoing {
                event: Arc::clone(event),
                pending: Pending::new(&state.webhooks.pending),
            })
        };
        match outgoing {
            Some(outgoing) => self.send_now(outgoing, false).await,
            None => 0,
        }
    }

    /// Waits until every queued or in-flight delivery (scheduled retries included) is done,
    /// or `timeout` passes. Returns true if idle. Events queued while paused count as not
    /// done until flushed.
    pub async fn webhooks_idle(&self, timeout: Duration) -> bool {
        let mut pending = self.lock().webhooks.pending.subscribe();
        let idle = tokio::time::timeout(timeout, pending.wait_for(|n| *n == 0)).await;
        matches!(idle, Ok(Ok(_)))
    }

    /// Starts one delivery task per event, without waiting for any.
    pub(crate) fn dispatch(&self, outgoing: Vec<Outgoing>) {
        for Outgoing { event, pending } in outgoing {
            spawn(deliver(self.clone(), event, pending, None, true));
        }
    }

    /// Starts a delivery task and waits for its first attempt.
    pub(crate) async fn send_now(&self, outgoing: Outgoing, retry: bool) -> u16 {
        let (first, status) = oneshot::channel();
        spawn(deliver(
            self.clone(),
            outgoing.event,
            outgoing.pending,
            Some(first),
            retry,
        ));
        status.await.unwrap_or(0)
    }

    /// One attempt, numbered and recorded.
    async fn attempt(&self, event: &Event) -> u16 {
        let attempt = {
            let mut state = self.lock();
            let n = state.webhooks.attempts.entry(event.id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let status = post(event).await;
        self.lock().webhooks.deliveries.push(WebhookDelivery {
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            url: event.url.clone(),
            body: event.body.clone(),
            signature: event.signature.clone(),
            status,
            attempt,
        });
        status
    }
}
