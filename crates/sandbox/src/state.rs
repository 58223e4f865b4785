//! The sandbox's in-memory records, the one function per money-state transition, and the
//! JSON views of sessions and payments in KOMOJU's key order.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Datelike, FixedOffset, SubsecRound, TimeDelta, Utc};
use rand::Rng;
use serde::Serialize;

use super::api::Reply;
use super::webhooks::Registry;
use super::{Fault, RecordedRequest, SandboxError};

/// A timestamp in KOMOJU's zone (JST), whole seconds.
pub(super) type Time = DateTime<FixedOffset>;

const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("+09:00 is a valid offset"),
};

/// Konbini brands exactly as KOMOJU lists them on a session's `payment_methods`.
const KONBINI_BRANDS: [&str; 6] = [
    "seven-eleven",
    "lawson",
    "family-mart",
    "ministop",
    "daily-yamazaki",
    "seicomart",
];

/// Payment types KOMOJU cannot refund through `/refund` (reference §3).
const NOT_REFUNDABLE_TYPES: [&str; 3] = ["konbini", "bank_transfer", "pay_easy"];

pub(super) fn now() -> Time {
    Utc::now().with_timezone(&JST).trunc_subsecs(0)
}

/// `2020-08-17T18:03:53.000+09:00`, as in KOMOJU's examples.
pub(super) fn format_time(t: &Time) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

/// A 25-character `[a-z0-9]` id, like KOMOJU's.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..25)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Konbini deadline: three days after creation, at 23:59:59 JST.
fn konbini_deadline(created: &Time) -> Time {
    (created.date_naive() + chrono::Days::new(3))
        .and_hms_opt(23, 59, 59)
        .and_then(|t| t.and_local_timezone(JST).single())
        .unwrap_or(*created + TimeDelta::days(3))
}

/// A state change, as `webhooks::events_for` announces it (payment changes only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Transition {
    SessionCompleted { session: String },
    SessionCancelled { session: String },
    PaymentAuthorized { payment: String },
    PaymentCaptured { payment: String },
    PaymentCancelled { payment: String },
    PaymentExpired { payment: String },
    PaymentRefundCreated { payment: String, refund: String },
    PaymentRefunded { payment: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionStatus {
    Pending,
    Completed,
    Cancelled,
}

impl SessionStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Completed => "completed",
            SessionStatus::Cancelled => "cancelled",
        }
    }
}

/// KOMOJU's payment statuses; `Pending` and `Failed` are never produced by this sandbox
/// but are accepted by the transitions that start from them.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PaymentStatus {
    Pending,
    Authorized,
    Captured,
    Refunded,
    Cancelled,
    Expired,
    Failed,
}

impl PaymentStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Failed => "failed",
        }
    }
}

/// A validated `POST /api/v1/sessions` request.
pub(super) struct NewSession {
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) return_url: String,
    pub(super) default_locale: String,
    pub(super) email: Option<String>,
    pub(super) payment_types: Vec<String>,
    pub(super) external_order_num: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) expires_in_seconds: i64,
}

pub(super) struct SessionRecord {
    pub(super) id: String,
    /// The secret key that created it; nobody else may read it through the API.
    pub(super) owner: String,
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) return_url: String,
    pub(super) default_locale: String,
    pub(super) email: Option<String>,
    pub(super) payment_types: Vec<String>,
    pub(super) external_order_num: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) created_at: Time,
    pub(super) expires_at: Time,
    pub(super) completed_at: Option<Time>,
    pub(super) cancelled_at: Option<Time>,
    pub(super) status: SessionStatus,
    pub(super) payment: Option<String>,
}

impl SessionRecord {
    /// Only a session still waiting for the customer can expire.
    pub(super) fn expired(&self, now: Time) -> bool {
        self.status == SessionStatus::Pending && now >= self.expires_at
    }

    pub(super) fn offers(&self, payment_type: &str) -> bool {
        self.payment_types.iter().any(|t| t == payment_type)
    }
}

pub(super) enum Method {
    CreditCard {
        year: i32,
    },
    Konbini {
        store: &'static str,
        confirmation_code: String,
        receipt: String,
    },
}

impl Method {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Method::CreditCard { .. } => "credit_card",
            Method::Konbini { .. } => "konbini",
        }
    }
}

pub(super) struct RefundRecord {
    id: String,
    amount: i64,
    description: Option<String>,
    created_at: Time,
}

pub(super) struct PaymentRecord {
    pub(super) id: String,
    pub(super) owner: String,
    pub(super) session: String,
    pub(super) status: PaymentStatus,
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) method: Method,
    pub(super) email: Option<String>,
    pub(super) payment_deadline: Option<Time>,
    pub(super) captured_at: Option<Time>,
    pub(super) created_at: Time,
    pub(super) external_order_num: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) locale: String,
    pub(super) amount_refunded: i64,
    pub(super) refunds: Vec<RefundRecord>,
}

/// Fingerprint of a request that used an idempotency key.
pub(super) type Fingerprint = [u8; 32];

pub(super) enum IdempotencyEntry {
    InFlight,
    Done(Fingerprint, Reply),
}

/// What `begin_idempotent` decided for a request carrying an idempotency key.
pub(super) enum IdempotencyBegin {
    /// First use: the key is now marked in flight; process, then `finish_idempotent`.
    Fresh,
    /// Same key, same request, already answered: send this again.
    Replay(Reply),
    /// Same key, first request still being processed.
    InFlight,
    /// Same key, different request.
    Mismatch,
}

pub(super) enum RefundError {
    NotFound,
    NotRefundable(String),
    InvalidAmount(String),
}

pub(super) enum CreateError {
    DuplicateExternalOrderNum,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) sessions: HashMap<String, SessionRecord>,
    pub(super) payments: HashMap<String, PaymentRecord>,
    /// `(secret key, external_order_num)` pairs already used.
    external_order_nums: HashSet<(String, String)>,
    /// Keyed by `(secret key, idempotency key)`.
    idempotency: HashMap<(String, String), IdempotencyEntry>,
    pub(super) faults: VecDeque<(Fault, u32)>,
    pub(super) requests: Vec<RecordedRequest>,
    pub(super) capture_amount_delta: i64,
    /// Card payments made on the hosted page stay `authorized` (manual capture).
    pub(super) card_manual_capture: bool,
    pub(super) sessions_created: usize,
    pub(super) webhooks: Registry,
    /// Payment types `GET /api/v1/payment_methods` lists, by secret key; absent: all.
    pub(super) payment_methods: HashMap<String, Vec<String>>,
    /// Secret keys answered 401 as if they were unknown.
    pub(super) refused_keys: HashSet<String>,
}

impl State {
    /// Takes the fault that applies to the API request being received, if any.
    pub(super) fn take_fault(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.faults.front_mut()?;
        let fault = *fault;
        *remaining -= 1;
        if *remaining == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    pub(super) fn begin_idempotent(
        &mut self,
        owner: &str,
        key: &str,
        fingerprint: Fingerprint,
    ) -> IdempotencyBegin {
        let slot = (owner.to_string(), key.to_string());
        match self.idempotency.get(&slot) {
            None => {
                self.idempotency.insert(slot, IdempotencyEntry::InFlight);
                IdempotencyBegin::Fresh
            }
            Some(IdempotencyEntry::InFlight) => IdempotencyBegin::InFlight,
            Some(IdempotencyEntry::Done(stored, reply)) if *stored == fingerprint => {
                IdempotencyBegin::Replay(reply.clone())
            }
            Some(IdempotencyEntry::Done(..)) => IdempotencyBegin::Mismatch,
        }
    }

    pub(super) fn finish_idempotent(
        &mut self,
        owner: &str,
        key: &str,
        fingerprint: Fingerprint,
        reply: Reply,
    ) {
        self.idempotency.insert(
            (owner.to_string(), key.to_string()),
            IdempotencyEntry::Done(fingerprint, reply),
        );
    }

    fn unused_id(&self) -> String {
        loop {
            let id = new_id();
            if !self.sessions.contains_key(&id) && !self.payments.contains_key(&id) {
                return id;
            }
        }
    }

    // ---- transitions: every change of a session or payment goes through one of these ----

    pub(super) fn create_session(
        &mut self,
        owner: &str,
        new: NewSession,
        now: Time,
    ) -> Result<(String, Vec<Transition>), CreateError> {
        if let Some(num) = &new.external_order_num {
            let pair = (owner.to_string(), num.clone());
            if self.external_order_nums.contains(&pair) {
                return Err(CreateError::DuplicateExternalOrderNum);
            }
            self.external_order_nums.insert(pair);
        }
        let id = self.unused_id();
        self.sessions.insert(
            id.clone(),
            SessionRecord {
                id: id.clone(),
                owner: owner.to_string(),
                amount: new.amount,
                currency: new.currency,
                return_url: new.return_url,
                default_locale: new.default_locale,
                email: new.email,
                payment_types: new.payment_types,
                external_order_num: new.external_order_num,
                metadata: new.metadata,
                created_at: now,
                expires_at: now + TimeDelta::seconds(new.expires_in_seconds),
                completed_at: None,
                cancelled_at: None,
                status: SessionStatus::Pending,
                payment: None,
            },
        );
        self.sessions_created += 1;
        Ok((id, Vec::new()))
    }

    fn payable_session(&self, session_id: &str, now: Time) -> Result<&SessionRecord, SandboxError> {
        let session = self
            .sessions
            .get(session_id)
            .ok_or(SandboxError::NotFound)?;
        if session.status != SessionStatus::Pending {
            return Err(SandboxError::InvalidState(format!(
                "session is {}",
                session.status.as_str()
            )));
        }
        if session.expired(now) {
            return Err(SandboxError::InvalidState("session has expired".into()));
        }
        Ok(session)
    }

    /// Hosted page, "Pay by card": a captured card payment; the session completes.
    pub(super) fn pay_by_card(
        &mut self,
        session_id: &str,
        now: Time,
    ) -> Result<(String, Vec<Transition>), SandboxError> {
        let manual = self.card_manual_capture;
        let delta = if manual { 0 } else { self.capture_amount_delta };
        let amount = self.payable_session(session_id, now)?.amount + delta;
        let method = Method::CreditCard {
            year: now.year() + 1,
        };
        let status = if manual {
            PaymentStatus::Authorized
        } else {
            PaymentStatus::Captured
        };
        let payment = self.attach_payment(session_id, method, status, amount, now)?;
        let first = if manual {
            Transition::PaymentAuthorized {
                payment: payment.clone(),
            }
        } else {
            Transition::PaymentCaptured {
                payment: payment.clone(),
            }
        };
        Ok((
            payment,
            vec![
                first,
                Transition::SessionCompleted {
                    session: session_id.to_string(),
                },
            ],
        ))
    }

    /// Hosted page, "Pay at a konbini": an authorized konbini payment waiting for cash; the
    /// session completes. Allowed even when the session did not offer konbini (a
    /// misbehaving KOMOJU, for tests).
    pub(super) fn pay_at_konbini(
        &mut self,
        session_id: &str,
        now: Time,
    ) -> Result<(String, Vec<Transition>), SandboxError> {
        let amount = self.payable_session(session_id, now)?.amount;
        let method = Method::Konbini {
            store: KONBINI_BRANDS[0],
            confirmation_code: digits(6),
            receipt: digits(11),
        };
        let payment =
            self.attach_payment(session_id, method, PaymentStatus::Authorized, amount, now)?;
        Ok((
            payment.clone(),
            vec![
                Transition::PaymentAuthorized { payment },
                Transition::SessionCompleted {
                    session: session_id.to_string(),
                },
            ],
        ))
    }

    fn attach_payment(
        &mut self,
        session_id: &str,
        method: Method,
        status: PaymentStatus,
        amount: i64,
        now: Time,
    ) -> Result<String, SandboxError> {
        let id = self.unused_id();
        let session = self
            .sessions
            .get_mut(session_id)
            .ok_or(SandboxError::NotFound)?;
        let payment_deadline = match method {
            Method::Konbini { .. } => Some(konbini_deadline(&now)),
            Method::CreditCard { .. } => None,
        };
        let record = PaymentRecord {
            id: id.clone(),
            owner: session.owner.clone(),
            session: session.id.clone(),
            status,
            amount,
            currency: session.currency.clone(),
            method,
            email: session.email.clone(),
            payment_deadline,
            captured_at: (status == PaymentStatus::Captured).then_some(now),
            created_at: now,
            external_order_num: session.external_order_num.clone(),
            metadata: session.metadata.clone(),
            locale: session.default_locale.clone(),
            amount_refunded: 0,
            refunds: Vec::new(),
        };
        session.status = SessionStatus::Completed;
        session.completed_at = Some(now);
        session.payment = Some(id.clone());
        self.payments.insert(id.clone(), record);
        Ok(id)
    }

    /// Hosted page, "Return to merchant": the session is cancelled, no payment.
    pub(super) fn return_to_merchant(
        &mut self,
        session_id: &str,
        now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        self.payable_session(session_id, now)?;
        let session = self
            .sessions
            .get_mut(session_id)
            .ok_or(SandboxError::NotFound)?;
        session.status = SessionStatus::Cancelled;
        session.cancelled_at = Some(now);
        Ok((
            (),
            vec![Transition::SessionCancelled {
                session: session_id.to_string(),
            }],
        ))
    }

    /// Konbini paid at the store (or a manual capture): `authorized` → `captured`.
    pub(super) fn capture_payment(
        &mut self,
        payment_id: &str,
        now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let delta = self.capture_amount_delta;
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(SandboxError::NotFound)?;
        if payment.status != PaymentStatus::Authorized {
            return Err(SandboxError::InvalidState(format!(
                "payment is {}, not authorized",
                payment.status.as_str()
            )));
        }
        payment.status = PaymentStatus::Captured;
        payment.captured_at = Some(now);
        payment.amount += delta;
        Ok((
            (),
            vec![Transition::PaymentCaptured {
                payment: payment_id.to_string(),
            }],
        ))
    }

    /// Deadline passed: `authorized` or `pending` → `expired`.
    pub(super) fn expire_payment(
        &mut self,
        payment_id: &str,
        _now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(SandboxError::NotFound)?;
        if !matches!(
            payment.status,
            PaymentStatus::Authorized | PaymentStatus::Pending
        ) {
            return Err(SandboxError::InvalidState(format!(
                "payment is {}, not authorized or pending",
                payment.status.as_str()
            )));
        }
        payment.status = PaymentStatus::Expired;
        Ok((
            (),
            vec![Transition::PaymentExpired {
                payment: payment_id.to_string(),
            }],
        ))
    }

    /// `POST /payments/{id}/cancel`: `pending` or `authorized` → `cancelled`.
    pub(super) fn cancel_payment(
        &mut self,
        payment_id: &str,
        _now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(SandboxError::NotFound)?;
        if !matches!(
            payment.status,
            PaymentStatus::Authorized | PaymentStatus::Pending
        ) {
            return Err(SandboxError::InvalidState(format!(
                "Payment cannot be cancelled in status {}",
                payment.status.as_str()
            )));
        }
        payment.status = PaymentStatus::Cancelled;
        Ok((
            (),
            vec![Transition::PaymentCancelled {
                payment: payment_id.to_string(),
            }],
        ))
    }

    /// `POST /payments/{id}/refund`: appends a refund of `amount` (default: what is left);
    /// the payment becomes `refunded` when nothing is left.
    pub(super) fn refund_payment(
        &mut self,
        payment_id: &str,
        amount: Option<i64>,
        description: Option<String>,
        now: Time,
    ) -> Result<((), Vec<Transition>), RefundError> {
        let id = self.unused_id();
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(RefundError::NotFound)?;
        let kind = payment.method.type_name();
        if NOT_REFUNDABLE_TYPES.contains(&kind) {
            return Err(RefundError::NotRefundable(format!(
                "{kind} payments cannot be refunded through the API; use a refund request"
            )));
        }
        if payment.status != PaymentStatus::Captured {
            return Err(RefundError::NotRefundable(format!(
                "Payment cannot be refunded in status {}",
                payment.status.as_str()
            )));
        }
        let left = payment.amount - payment.amount_refunded;
        let amount = amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return Err(RefundError::InvalidAmount(format!(
                "amount must be between 1 and the {left} left to refund"
            )));
        }
        payment.refunds.push(RefundRecord {
            id: id.clone(),
            amount,
            description,
            created_at: now,
        });
        payment.amount_refunded += amount;
        let mut transitions = vec![Transition::PaymentRefundCreated {
            payment: payment_id.to_string(),
            refund: id,
        }];
        if payment.amount_refunded == payment.amount {
            payment.status = PaymentStatus::Refunded;
            transitions.push(Transition::PaymentRefunded {
                payment: payment_id.to_string(),
            });
        }
        Ok(((), transitions))
    }

    // ---- views ----

    /// The Session object; `amount_skew` is added to every `amount` (for
    /// `Fault::WrongAmountInReply`).
    pub(super) fn session_view(
        &self,
        session: &SessionRecord,
        public_base: &str,
        now: Time,
        amount_skew: i64,
    ) -> SessionView {
        SessionView {
            id: session.id.clone(),
            resource: "session",
            mode: "payment",
            amount: session.amount + amount_skew,
            currency: session.currency.clone(),
            payment: session
                .payment
                .as_ref()
                .and_then(|id| self.payments.get(id))
                .map(|p| payment_view(p, public_base, amount_skew)),
            session_url: format!("{public_base}/sessions/{}", session.id),
            return_url: session.return_url.clone(),
            default_locale: session.default_locale.clone(),
            payment_methods: session
                .payment_types
                .iter()
                .map(|t| PaymentMethodView {
                    kind: t.clone(),
                    brands: (t == "konbini").then(|| {
                        KONBINI_BRANDS
                            .iter()
                            .map(|b| (*b, format!("/images/konbini/{b}.svg")))
                            .collect()
                    }),
                })
                .collect(),
            created_at: format_time(&session.created_at),
            cancelled_at: session.cancelled_at.as_ref().map(format_time),
            completed_at: session.completed_at.as_ref().map(format_time),
            status: session.status.as_str(),
            expired: session.expired(now),
            metadata: session.metadata.clone(),
            payment_data: PaymentDataView {
                external_order_num: session.external_order_num.clone(),
            },
            email: session.email.clone(),
        }
    }
}

/// The Payment object; `amount_skew` is added to `amount` (for `Fault::WrongAmountInReply`).
pub(super) fn payment_view(p: &PaymentRecord, public_base: &str, amount_skew: i64) -> PaymentView {
    let payment_details = match &p.method {
        Method::CreditCard { year } => PaymentDetailsView::CreditCard {
            kind: "credit_card",
            email: p.email.clone(),
            brand: "visa",
            last_four_digits: "4242",
            month: 12,
            year: *year,
        },
        Method::Konbini {
            store,
            confirmation_code,
            receipt,
        } => PaymentDetailsView::Konbini {
            kind: "konbini",
            email: p.email.clone(),
            store,
            confirmation_code: confirmation_code.clone(),
            receipt: receipt.clone(),
            instructions_url: format!("{public_base}/instructions/{}", p.id),
        },
    };
    PaymentView {
        id: p.id.clone(),
        resource: "payment",
        status: Cow::Borrowed(p.status.as_str()),
        amount: p.amount + amount_skew,
        tax: 0,
        customer: None,
        payment_deadline: p.payment_deadline.as_ref().map(format_time),
        payment_details,
        payment_method_fee: 0,
        total: p.amount,
        currency: p.currency.clone(),
        description: None,
        captured_at: p.captured_at.as_ref().map(format_time),
        external_order_num: p.external_order_num.clone(),
        metadata: p.metadata.clone(),
        created_at: format_time(&p.created_at),
        amount_refunded: p.amount_refunded,
        locale: p.locale.clone(),
        session: p.session.clone(),
        customer_family_name: None,
        customer_given_name: None,
        refunds: p
            .refunds
            .iter()
            .map(|r| RefundView {
                id: r.id.clone(),
                resource: "refund",
                amount: r.amount,
                currency: p.currency.clone(),
                payment: p.id.clone(),
                description: r.description.clone(),
                created_at: format_time(&r.created_at),
                chargeback: false,
            })
            .collect(),
        refund_requests: Vec::new(),
    }
}

// Wire shapes. Private structs rather than `serde_json::Value` so that keys keep KOMOJU's
// order on the wire.

#[derive(Serialize)]
pub(super) struct SessionView {
    id: String,
    resource: &'static str,
    mode: &'static str,
    amount: i64,
    currency: String,
    payment: Option<PaymentView>,
    session_url: String,
    return_url: String,
    default_locale: String,
    payment_methods: Vec<PaymentMethodView>,
    created_at: String,
    cancelled_at: Option<String>,
    completed_at: Option<String>,
    status: &'static str,
    expired: bool,
    metadata: BTreeMap<String, String>,
    payment_data: PaymentDataView,
    email: Option<String>,
}

#[derive(Serialize)]
struct PaymentMethodView {
    #[serde(rename = "type")]
    kind: String,
    /// A `Vec` of pairs serialized as a map keeps KOMOJU's brand order.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_brands"
    )]
    brands: Option<Vec<(&'static str, String)>>,
}

fn serialize_brands<S: serde::Serializer>(
    brands: &Option<Vec<(&'static str, String)>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match brands {
        Some(brands) => serializer.collect_map(brands.iter().map(|(k, v)| (k, v))),
        None => serializer.serialize_none(),
    }
}

#[derive(Serialize)]
struct PaymentDataView {
    external_order_num: Option<String>,
}

#[derive(Serialize)]
pub(super) struct PaymentView {
    id: String,
    resource: &'static str,
    status: Cow<'static, str>,
    amount: i64,
    tax: i64,
    customer: Option<serde_json::Value>,
    payment_deadline: Option<String>,
    payment_details: PaymentDetailsView,
    payment_method_fee: i64,
    total: i64,
    currency: String,
    description: Option<String>,
    captured_at: Option<String>,
    external_order_num: Option<String>,
    metadata: BTreeMap<String, String>,
    created_at: String,
    amount_refunded: i64,
    locale: String,
    session: String,
    customer_family_name: Option<String>,
    customer_given_name: Option<String>,
    refunds: Vec<RefundView>,
    refund_requests: Vec<serde_json::Value>,
}

impl PaymentView {
    /// For injected stale events (`Sandbox::send_event`).
    pub(super) fn override_status(&mut self, status: &str) {
        self.status = Cow::Owned(status.to_string());
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum PaymentDetailsView {
    CreditCard {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<String>,
        brand: &'static str,
        last_four_digits: &'static str,
        month: u32,
        year: i32,
    },
    Konbini {
        #[serde(rename = "type")]
        kind: &'static str,
        email: Option<String>,
        store: &'static str,
        confirmation_code: String,
        receipt: String,
        instructions_url: String,
    },
}

#[derive(Serialize)]
struct RefundView {
    id: String,
    resource: &'static str,
    amount: i64,
    currency: String,
    payment: String,
    description: Option<String>,
    created_at: String,
    chargeback: bool,
}
