//! The stand-in's records (sessions, payments, refunds, refund requests, idempotent
//! replies, the request log) and the one function per money-state transition. Every
//! change of a session or payment goes through a function here and returns the
//! [`Transition`]s it made, which `Sandbox::transition` announces (webhooks). The JSON
//! views are in `views.rs`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use rand::Rng;

use super::clock::{deadline_after, Time};
use super::money::{self, Charge, Rates};
use super::reply::Reply;
use super::webhooks::Registry;
use super::{Fault, RecordedRequest, SandboxError};

/// KOMOJU's documented test card number for a declined card: "Cannot use card"
/// (doc.komoju.com/docs/test-cards; ja.doc.komoju.com: 「クレジットカード使用不可」). Paid
/// on the hosted page (form field `card_number`), it makes a `failed` payment and the
/// session stays open.
pub const DECLINED_CARD_NUMBER: &str = "4123111111111059";

/// The card paid when the hosted page's form names none: KOMOJU's test Visa
/// (doc.komoju.com/docs/test-cards).
pub(crate) const DEFAULT_CARD_NUMBER: &str = "4111111111111111";

/// KOMOJU's failing test cards (doc.komoju.com/docs/test-cards, whose English page lists
/// "Invalid card" as …067 and whose Japanese page as …075), each with the error code of
/// KOMOJU's list it stands for (the EC-CUBE plugin's `KomojuClient.php` names the codes;
/// which code each card gives is a guess from the card's description) and the page's text.
const FAILING_TEST_CARDS: [(&str, &str, &str); 7] = [
    (
        "4123111111111000",
        "insufficient_funds",
        "Insufficient funds",
    ),
    ("4123111111111018", "exceeds_limit", "Exceeds card limit"),
    (
        "4123111111111034",
        "bad_verification_value",
        "Bad verification value",
    ),
    ("4123111111111042", "card_expired", "Card expired"),
    (DECLINED_CARD_NUMBER, "card_declined", "Cannot use card"),
    ("4123111111111067", "invalid_number", "Invalid card"),
    ("4123111111111075", "invalid_number", "Invalid card"),
];

/// Konbini brands exactly as KOMOJU lists them on a session's `payment_methods`
/// (shared/seeds/komoju-hosted-page-en.txt).
pub(crate) const KONBINI_BRANDS: [&str; 6] = [
    "seven-eleven",
    "lawson",
    "family-mart",
    "ministop",
    "daily-yamazaki",
    "seicomart",
];

/// Konbini, bank transfer and Pay-easy: KOMOJU's examples give konbini codes 3 days
/// (clock.rs); the same for the other two is a guess.
const DEFERRED_DEADLINE_DAYS: u64 = 3;
/// Card payments carry a `payment_deadline` too, 2 days after creation in the
/// WooCommerce plugin's card fixture (`refunded-webhook.cy.js`); what it means for a card
/// is not documented.
const CARD_DEADLINE_DAYS: u64 = 2;

/// A 25-character `[a-z0-9]` id, like KOMOJU's ("A unique 25-character alphanumeric
/// identifier", SDK `docs/Models/Payment.md`; lower case in every example).
pub(crate) fn new_id() -> String {
    random_of(b"abcdefghijklmnopqrstuvwxyz0123456789", 25)
}

/// `n` random characters of `alphabet`.
pub(crate) fn random_of(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

fn digits(n: usize) -> String {
    random_of(b"0123456789", n)
}

/// A state change, as `Sandbox::transition` announces it (payment changes only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    SessionCompleted {
        session: String,
    },
    SessionCancelled {
        session: String,
    },
    PaymentAuthorized {
        payment: String,
    },
    PaymentCaptured {
        payment: String,
    },
    PaymentFailed {
        payment: String,
    },
    PaymentCancelled {
        payment: String,
    },
    PaymentExpired {
        payment: String,
    },
    PaymentRefundCreated {
        payment: String,
        refund: String,
    },
    PaymentRefunded {
        payment: String,
    },
    /// A change with no event of its own (a refund request's progress).
    PaymentUpdated {
        payment: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionStatus {
    Pending,
    Completed,
    Cancelled,
}

impl SessionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Completed => "completed",
            SessionStatus::Cancelled => "cancelled",
        }
    }
}

/// KOMOJU's payment statuses (SDK `models/payment-status.ts`) that the stand-in
/// produces. KOMOJU's `pending` is left out: its older API reported failed card attempts
/// as `pending` (its 2024-10-18 notice); the SDK's enum and the `payment.failed` event
/// have `failed`, which is what the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PaymentStatus {
    Authorized,
    Captured,
    Refunded,
    Cancelled,
    Expired,
    Failed,
}

impl PaymentStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Failed => "failed",
        }
    }
}

/// `payment_data.capture` (SDK `models/payment-data-request.ts`: `auto` | `manual`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    Auto,
    Manual,
}

impl Capture {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Capture::Auto => "auto",
            Capture::Manual => "manual",
        }
    }
}

/// A validated `POST /api/v1/sessions` request.
pub(crate) struct NewSession {
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) return_url: String,
    pub(crate) default_locale: String,
    pub(crate) email: Option<String>,
    pub(crate) payment_types: Vec<String>,
    pub(crate) external_order_num: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) expires_in_seconds: i64,
    pub(crate) capture: Capture,
}

/// A type a session offers, with what paying with it charges (fixed when the session is
/// created, as KOMOJU shows it on the session).
pub(crate) struct Offered {
    pub(crate) slug: String,
    pub(crate) charge: Charge,
}

pub(crate) struct SessionRecord {
    pub(crate) id: String,
    /// The secret key that created it; nobody else may read it through the API.
    pub(crate) owner: String,
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) return_url: String,
    pub(crate) default_locale: String,
    pub(crate) email: Option<String>,
    /// The types asked for that can be paid in some currency, in the order asked.
    pub(crate) offered: Vec<Offered>,
    pub(crate) external_order_num: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) capture: Capture,
    pub(crate) created_at: Time,
    pub(crate) expires_at: Time,
    pub(crate) completed_at: Option<Time>,
    pub(crate) cancelled_at: Option<Time>,
    pub(crate) status: SessionStatus,
    /// The latest payment attempt (a failed one while the session is still open).
    pub(crate) payment: Option<String>,
}

impl SessionRecord {
    /// Only a session still waiting for the customer can expire.
    pub(crate) fn expired(&self, now: Time) -> bool {
        self.status == SessionStatus::Pending && now >= self.expires_at
    }

    pub(crate) fn offers(&self, payment_type: &str) -> bool {
        self.offered.iter().any(|o| o.slug == payment_type)
    }

    /// What paying with `slug` charges: as offered, or, for a type the session did not
    /// offer (the hosted page's misbehaving-KOMOJU path), computed now.
    pub(crate) fn charge_for(&self, slug: &str, rates: &Rates) -> Option<Charge> {
        match self.offered.iter().find(|o| o.slug == slug) {
            Some(offered) => Some(offered.charge.clone()),
            None => money::charge(slug, self.amount, &self.currency, rates),
        }
    }
}

/// How a payment was paid, with the details KOMOJU shows for its type.
pub(crate) enum Method {
    CreditCard {
        brand: &'static str,
        last_four: String,
        month: u32,
        year: i32,
    },
    Konbini {
        store: String,
        confirmation_code: Option<String>,
        receipt: String,
    },
    PayPay {
        external_payment_id: String,
    },
    BankTransfer {
        order_id: String,
        account_number: String,
    },
    PayEasy {
        bank_id: String,
        customer_id: String,
        confirmation_id: String,
    },
}

impl Method {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Method::CreditCard { .. } => "credit_card",
            Method::Konbini { .. } => "konbini",
            Method::PayPay { .. } => "paypay",
            Method::BankTransfer { .. } => "bank_transfer",
            Method::PayEasy { .. } => "pay_easy",
        }
    }

    /// Paid in cash or at a bank later: `authorized` until the money is in, and refunded
    /// to a bank account the buyer gives (EC-CUBE plugin `Controller/Admin/
    /// OrderController.php`: the refund's `redirect_url`).
    pub(crate) fn deferred(&self) -> bool {
        matches!(
            self,
            Method::Konbini { .. } | Method::BankTransfer { .. } | Method::PayEasy { .. }
        )
    }
}

pub(crate) struct RefundRecord {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) description: Option<String>,
    pub(crate) created_at: Time,
    /// For a refund of a deferred type: the secret part of its `redirect_url`, the page
    /// where the buyer gives a bank account.
    pub(crate) bank_token: Option<String>,
}

/// A bank account as KOMOJU's refund request holds it (SDK `models/refund-request.ts`).
#[derive(Clone)]
pub(crate) struct BankAccount {
    pub(crate) customer_name: String,
    pub(crate) bank_name: String,
    pub(crate) bank_code: Option<String>,
    pub(crate) branch_name: String,
    pub(crate) branch_number: String,
    pub(crate) account_type: String,
    pub(crate) account_number: String,
}

impl BankAccount {
    /// What [`State::complete_refund_request`] fills in for a buyer who gave none.
    fn for_tests() -> BankAccount {
        BankAccount {
            customer_name: "ｻﾝﾄﾞﾎﾞｯｸｽ ﾀﾛｳ".into(),
            bank_name: "Sandbox Bank".into(),
            bank_code: Some("0001".into()),
            branch_name: "Head Office".into(),
            branch_number: "001".into(),
            account_type: "normal".into(),
            account_number: "1234567".into(),
        }
    }
}

/// SDK `models/refund-request-status.ts` has `pending`, `rejected` and `completed`; the
/// stand-in never rejects a bank account, so it produces the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefundRequestStatus {
    Pending,
    Completed,
}

impl RefundRequestStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RefundRequestStatus::Pending => "pending",
            RefundRequestStatus::Completed => "completed",
        }
    }
}

pub(crate) struct RefundRequestRecord {
    pub(crate) id: String,
    /// The refund whose `redirect_url` it answers.
    pub(crate) refund: String,
    pub(crate) account: BankAccount,
    pub(crate) status: RefundRequestStatus,
    pub(crate) created_at: Time,
}

pub(crate) struct PaymentRecord {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) session: String,
    pub(crate) status: PaymentStatus,
    /// Minor units of `currency`, before tax and fee.
    pub(crate) amount: i64,
    pub(crate) tax: i64,
    pub(crate) fee: i64,
    /// The currency charged: the session's, or the one KOMOJU converted into.
    pub(crate) currency: String,
    pub(crate) method: Method,
    pub(crate) email: Option<String>,
    pub(crate) payment_deadline: Option<Time>,
    pub(crate) captured_at: Option<Time>,
    pub(crate) created_at: Time,
    pub(crate) external_order_num: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) locale: String,
    pub(crate) amount_refunded: i64,
    pub(crate) refunds: Vec<RefundRecord>,
    pub(crate) refund_requests: Vec<RefundRequestRecord>,
    /// A card payment of a manual-capture session: `POST /payments/{id}/capture` works.
    pub(crate) manual_capture: bool,
}

impl PaymentRecord {
    /// `amount + tax + payment_method_fee` (docs.komoju.com: amount 300, tax 30, total 330).
    pub(crate) fn total(&self) -> i64 {
        self.amount + self.tax + self.fee
    }
}

/// Fingerprint of a request that used an idempotency key.
pub(crate) type Fingerprint = [u8; 32];

pub(crate) enum IdempotencyEntry {
    InFlight,
    Done(Fingerprint, Reply),
}

/// What `begin_idempotent` decided for a request carrying an idempotency key.
pub(crate) enum IdempotencyBegin {
    /// First use: the key is now marked in flight; process, then `finish_idempotent`.
    Fresh,
    /// Same key, same request, already answered: send this again.
    Replay(Reply),
    /// Same key, first request still being processed.
    InFlight,
    /// Same key, different request.
    Mismatch,
}

pub(crate) enum RefundError {
    NotFound,
    NotRefundable(String),
    InvalidAmount(String),
}

pub(crate) enum CaptureError {
    NotFound,
    NotCapturable(String),
    InvalidAmount(String),
}

pub(crate) enum CreateError {
    DuplicateExternalOrderNum,
}

/// The buyer's choice on the hosted page.
pub(crate) enum PayChoice {
    /// `card_number`: a test card number (digits, spaces allowed); none: the test Visa.
    Card {
        number: Option<String>,
    },
    /// `store`: one of [`KONBINI_BRANDS`]; none: the first.
    Konbini {
        store: Option<String>,
    },
    PayPay,
    BankTransfer,
    PayEasy,
}

impl PayChoice {
    pub(crate) fn slug(&self) -> &'static str {
        match self {
            PayChoice::Card { .. } => "credit_card",
            PayChoice::Konbini { .. } => "konbini",
            PayChoice::PayPay => "paypay",
            PayChoice::BankTransfer => "bank_transfer",
            PayChoice::PayEasy => "pay_easy",
        }
    }
}

/// What paying on the hosted page did.
pub(crate) enum PayOutcome {
    /// The session completed with this payment (authorized or captured).
    Completed(String),
    /// The card was declined (the text says why): a `failed` payment, and the session
    /// stays open.
    Declined(String),
    /// The buyer returned to the merchant: the session is cancelled.
    Returned,
    /// Nothing happened; the text says why (a malformed card number, a type the
    /// session's currency cannot be converted for).
    Refused(String),
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) sessions: HashMap<String, SessionRecord>,
    pub(crate) payments: HashMap<String, PaymentRecord>,
    /// `(secret key, external_order_num)` pairs already used.
    external_order_nums: HashSet<(String, String)>,
    /// Keyed by `(secret key, idempotency key)`.
    idempotency: HashMap<(String, String), IdempotencyEntry>,
    pub(crate) faults: VecDeque<(Fault, u32)>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) capture_amount_delta: i64,
    /// Card payments made on the hosted page stay `authorized` (manual capture) whatever
    /// the session's `payment_data.capture`.
    pub(crate) card_manual_capture: bool,
    pub(crate) sessions_created: usize,
    pub(crate) webhooks: Registry,
    /// Payment types `GET /api/v1/payment_methods` lists, by secret key; absent: all.
    pub(crate) payment_methods: HashMap<String, Vec<String>>,
    /// Secret keys answered 401 as if they were unknown.
    pub(crate) refused_keys: HashSet<String>,
    pub(crate) rates: Rates,
    /// `payment_method_fee` by payment type, in minor units of the charged currency.
    pub(crate) fees: HashMap<String, i64>,
}

impl State {
    /// Takes the fault that applies to the API request being received, if any.
    pub(crate) fn take_fault(&mut self) -> Option<Fault> {
        let (fault, remaining) = self.faults.front_mut()?;
        let fault = *fault;
        *remaining -= 1;
        if *remaining == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    pub(crate) fn begin_idempotent(
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

    pub(crate) fn finish_idempotent(
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

    /// The payment and refund whose `redirect_url` carries `token`.
    pub(crate) fn refund_by_token(&self, token: &str) -> Option<(&PaymentRecord, &RefundRecord)> {
        self.payments.values().find_map(|p| {
            p.refunds
                .iter()
                .find(|r| r.bank_token.as_deref() == Some(token))
                .map(|r| (p, r))
        })
    }

    // ---- transitions: every change of a session or payment goes through one of these ----

    pub(crate) fn create_session(
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
        let offered = new
            .payment_types
            .iter()
            .filter_map(|slug| {
                money::charge(slug, new.amount, &new.currency, &self.rates).map(|charge| Offered {
                    slug: slug.clone(),
                    charge,
                })
            })
            .collect();
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
                offered,
                external_order_num: new.external_order_num,
                metadata: new.metadata,
                capture: new.capture,
                created_at: now,
                expires_at: now + chrono::TimeDelta::seconds(new.expires_in_seconds),
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

    /// Hosted page, a payment attempt. A declined test card makes a `failed` payment,
    /// becomes the session's `payment` and leaves the session open, so the buyer may try
    /// again ("payment may be re-attempted", doc.komoju.com/docs/webhooks on
    /// `payment.failed`); any other attempt completes the session: cards and PayPay
    /// `captured` (cards `authorized` when the capture is manual), konbini, bank transfer
    /// and Pay-easy `authorized` until the money is in. Paying a type the session did not
    /// offer is allowed (a misbehaving KOMOJU, for tests).
    pub(crate) fn pay(
        &mut self,
        session_id: &str,
        choice: PayChoice,
        now: Time,
    ) -> Result<(PayOutcome, Vec<Transition>), SandboxError> {
        let session = self.payable_session(session_id, now)?;
        let slug = choice.slug();
        let Some(charge) = session.charge_for(slug, &self.rates) else {
            let why = format!("{slug} cannot be paid in {}", session.currency);
            return Ok((PayOutcome::Refused(why), Vec::new()));
        };
        let manual = matches!(choice, PayChoice::Card { .. })
            && (session.capture == Capture::Manual || self.card_manual_capture);
        let (method, failure) = match method_for(choice, now) {
            Ok(chosen) => chosen,
            Err(why) => return Ok((PayOutcome::Refused(why), Vec::new())),
        };
        if let Some(message) = failure {
            let payment = self.add_payment(
                session_id,
                method,
                PaymentStatus::Failed,
                &charge,
                false,
                now,
            )?;
            let transitions = vec![Transition::PaymentFailed {
                payment: payment.clone(),
            }];
            return Ok((PayOutcome::Declined(message), transitions));
        }
        let status = if method.deferred() || manual {
            PaymentStatus::Authorized
        } else {
            PaymentStatus::Captured
        };
        let payment = self.add_payment(session_id, method, status, &charge, manual, now)?;
        if let Some(session) = self.sessions.get_mut(session_id) {
            session.status = SessionStatus::Completed;
            session.completed_at = Some(now);
        }
        let first = if status == PaymentStatus::Captured {
            Transition::PaymentCaptured {
                payment: payment.clone(),
            }
        } else {
            Transition::PaymentAuthorized {
                payment: payment.clone(),
            }
        };
        let completed = Transition::SessionCompleted {
            session: session_id.to_string(),
        };
        Ok((PayOutcome::Completed(payment), vec![first, completed]))
    }

    /// A new payment of the session, which becomes the session's `payment`. A payment
    /// captured at once carries the amount skew of `Sandbox::set_capture_amount_delta`.
    fn add_payment(
        &mut self,
        session_id: &str,
        method: Method,
        status: PaymentStatus,
        charge: &Charge,
        manual_capture: bool,
        now: Time,
    ) -> Result<String, SandboxError> {
        let id = self.unused_id();
        let delta = if status == PaymentStatus::Captured {
            self.capture_amount_delta
        } else {
            0
        };
        let fee = self.fees.get(method.type_name()).copied().unwrap_or(0);
        let session = self
            .sessions
            .get_mut(session_id)
            .ok_or(SandboxError::NotFound)?;
        let payment_deadline = match method {
            Method::CreditCard { .. } => Some(deadline_after(&now, CARD_DEADLINE_DAYS)),
            Method::PayPay { .. } => None,
            _ => Some(deadline_after(&now, DEFERRED_DEADLINE_DAYS)),
        };
        let record = PaymentRecord {
            id: id.clone(),
            owner: session.owner.clone(),
            session: session.id.clone(),
            status,
            amount: charge.amount + delta,
            tax: 0,
            fee,
            currency: charge.currency.clone(),
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
            refund_requests: Vec::new(),
            manual_capture,
        };
        session.payment = Some(id.clone());
        self.payments.insert(id.clone(), record);
        Ok(id)
    }

    /// Hosted page, "Return to merchant": the open session is cancelled.
    pub(crate) fn return_to_merchant(
        &mut self,
        session_id: &str,
        now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        self.payable_session(session_id, now)?;
        self.cancel_session(session_id, now)
    }

    /// `POST /sessions/{id}/cancel` (SDK `SessionsApi.cancelSession`): a pending session
    /// (expired or not) becomes `cancelled`; an already cancelled one is answered as it is,
    /// nothing changed; a completed one is refused. The SDK documents neither refusal nor
    /// repeat: both answers are guesses.
    pub(crate) fn cancel_session(
        &mut self,
        session_id: &str,
        now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let session = self
            .sessions
            .get_mut(session_id)
            .ok_or(SandboxError::NotFound)?;
        match session.status {
            SessionStatus::Cancelled => Ok(((), Vec::new())),
            SessionStatus::Completed => Err(SandboxError::InvalidState(
                "Session is completed and cannot be cancelled".into(),
            )),
            SessionStatus::Pending => {
                session.status = SessionStatus::Cancelled;
                session.cancelled_at = Some(now);
                let transition = Transition::SessionCancelled {
                    session: session_id.to_string(),
                };
                Ok(((), vec![transition]))
            }
        }
    }

    /// Konbini, bank transfer or Pay-easy paid (or a manual card capture, any amount):
    /// `authorized` → `captured`, with the amount skew of
    /// `Sandbox::set_capture_amount_delta`.
    pub(crate) fn capture_payment(
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

    /// `POST /payments/{id}/capture`: "Only works on payments with a payment_type of
    /// credit_card" created "via a session with `capture` set to `manual`" (SDK
    /// `PaymentsApi.capturePayment`; shared/reference/komoju-api.md §3), `authorized`
    /// ones. `amount` (before tax) may be less than authorized; that it replaces the
    /// payment's `amount` is a guess. Refusals are 422 `not_capturable`.
    pub(crate) fn capture_by_api(
        &mut self,
        payment_id: &str,
        amount: Option<i64>,
        now: Time,
    ) -> Result<((), Vec<Transition>), CaptureError> {
        let delta = self.capture_amount_delta;
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(CaptureError::NotFound)?;
        if !payment.manual_capture || payment.status != PaymentStatus::Authorized {
            return Err(CaptureError::NotCapturable(format!(
                "Payment cannot be captured: {} payment in status {}{}",
                payment.method.type_name(),
                payment.status.as_str(),
                if payment.manual_capture {
                    ""
                } else {
                    " without manual capture"
                }
            )));
        }
        let amount = amount.unwrap_or(payment.amount);
        if amount > payment.amount {
            return Err(CaptureError::InvalidAmount(format!(
                "amount must not exceed the {} authorized",
                payment.amount
            )));
        }
        payment.status = PaymentStatus::Captured;
        payment.captured_at = Some(now);
        payment.amount = amount + delta;
        Ok((
            (),
            vec![Transition::PaymentCaptured {
                payment: payment_id.to_string(),
            }],
        ))
    }

    /// Deadline passed: `authorized` or `pending` → `expired`.
    pub(crate) fn expire_payment(
        &mut self,
        payment_id: &str,
        _now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(SandboxError::NotFound)?;
        if !matches!(payment.status, PaymentStatus::Authorized) {
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

    /// `POST /payments/{id}/cancel`: "must have a state of `pending` or `authorized`"
    /// (SDK `PaymentsApi.cancelPayment`).
    pub(crate) fn cancel_payment(
        &mut self,
        payment_id: &str,
        _now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(SandboxError::NotFound)?;
        if !matches!(payment.status, PaymentStatus::Authorized) {
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

    /// `POST /payments/{id}/refund`: appends a refund of `amount` (default: what is
    /// left of `amount + tax`) to a captured payment of any type; `refunded` when nothing
    /// is left. A konbini, bank transfer or Pay-easy refund carries a `redirect_url`
    /// where the buyer gives a bank account (EC-CUBE plugin `OrderController::refund`
    /// mails the newest refund's `redirect_url`). Guesses, for those: the refund counts in
    /// `amount_refunded` and `status` at once and sends `payment.refund.created` (and
    /// `payment.refunded`) at once, as a card refund does (the plugin sums `refunds[]`
    /// right after the call); the money moves when the buyer has given the account.
    pub(crate) fn refund_payment(
        &mut self,
        payment_id: &str,
        amount: Option<i64>,
        description: Option<String>,
        now: Time,
    ) -> Result<(String, Vec<Transition>), RefundError> {
        let id = self.unused_id();
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(RefundError::NotFound)?;
        if payment.status != PaymentStatus::Captured {
            return Err(RefundError::NotRefundable(format!(
                "Payment cannot be refunded in status {}",
                payment.status.as_str()
            )));
        }
        let left = payment.amount + payment.tax - payment.amount_refunded;
        let amount = amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return Err(RefundError::InvalidAmount(format!(
                "amount must be between 1 and the {left} left to refund"
            )));
        }
        let bank_token = payment
            .method
            .deferred()
            .then(|| random_of(b"abcdefghijklmnopqrstuvwxyz0123456789", 40));
        payment.refunds.push(RefundRecord {
            id: id.clone(),
            amount,
            description,
            created_at: now,
            bank_token,
        });
        payment.amount_refunded += amount;
        let mut transitions = vec![Transition::PaymentRefundCreated {
            payment: payment_id.to_string(),
            refund: id.clone(),
        }];
        if payment.amount_refunded == payment.amount + payment.tax {
            payment.status = PaymentStatus::Refunded;
            transitions.push(Transition::PaymentRefunded {
                payment: payment_id.to_string(),
            });
        }
        Ok((id, transitions))
    }

    /// The buyer gave a bank account on a refund's `redirect_url` page: the payment gets a
    /// refund request (SDK `models/refund-request.ts`), `pending` until KOMOJU has paid it
    /// ("a manual process, … carried out at a later date", SDK
    /// `PaymentsApi.createRefundRequest`). Once per refund. That a `payment.updated` event
    /// announces it is a guess.
    pub(crate) fn submit_bank_account(
        &mut self,
        token: &str,
        account: BankAccount,
        now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let id = new_id();
        let payment = self
            .payments
            .values_mut()
            .find(|p| {
                p.refunds
                    .iter()
                    .any(|r| r.bank_token.as_deref() == Some(token))
            })
            .ok_or(SandboxError::NotFound)?;
        let Some(refund) = payment
            .refunds
            .iter()
            .find(|r| r.bank_token.as_deref() == Some(token))
            .map(|r| r.id.clone())
        else {
            return Err(SandboxError::NotFound);
        };
        if payment.refund_requests.iter().any(|r| r.refund == refund) {
            return Err(SandboxError::InvalidState(
                "a bank account was already given for this refund".into(),
            ));
        }
        payment.refund_requests.push(RefundRequestRecord {
            id,
            refund,
            account,
            status: RefundRequestStatus::Pending,
            created_at: now,
        });
        let transition = Transition::PaymentUpdated {
            payment: payment.id.clone(),
        };
        Ok(((), vec![transition]))
    }

    /// KOMOJU paid the payment's refund requests: each `pending` one becomes
    /// `completed`; a refund still waiting for its bank account first gets one (as if the
    /// buyer had given a test account). `payment.updated` announces it (a guess).
    pub(crate) fn complete_refund_request(
        &mut self,
        payment_id: &str,
        now: Time,
    ) -> Result<((), Vec<Transition>), SandboxError> {
        let payment = self
            .payments
            .get_mut(payment_id)
            .ok_or(SandboxError::NotFound)?;
        let waiting: Vec<String> = payment
            .refunds
            .iter()
            .filter(|r| r.bank_token.is_some())
            .filter(|r| !payment.refund_requests.iter().any(|q| q.refund == r.id))
            .map(|r| r.id.clone())
            .collect();
        for refund in waiting {
            payment.refund_requests.push(RefundRequestRecord {
                id: new_id(),
                refund,
                account: BankAccount::for_tests(),
                status: RefundRequestStatus::Pending,
                created_at: now,
            });
        }
        let mut changed = false;
        for request in &mut payment.refund_requests {
            if request.status == RefundRequestStatus::Pending {
                request.status = RefundRequestStatus::Completed;
                changed = true;
            }
        }
        if !changed {
            return Err(SandboxError::InvalidState(
                "no refund request of this payment is waiting".into(),
            ));
        }
        let transition = Transition::PaymentUpdated {
            payment: payment_id.to_string(),
        };
        Ok(((), vec![transition]))
    }
}

/// The method a choice pays with, and the decline text when the card is one of KOMOJU's
/// failing test cards; `Err` for a card number that is not 14 to 19 digits.
fn method_for(choice: PayChoice, now: Time) -> Result<(Method, Option<String>), String> {
    use chrono::Datelike;
    let method = match choice {
        PayChoice::Card { number } => {
            let number: String = number
                .as_deref()
                .unwrap_or(DEFAULT_CARD_NUMBER)
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if !(14..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err("The card number must be 14 to 19 digits.".into());
            }
            let failure = FAILING_TEST_CARDS
                .iter()
                .find(|(n, ..)| *n == number)
                .map(|(_, code, text)| format!("{text} ({code})"));
            let method = Method::CreditCard {
                brand: card_brand(&number),
                last_four: number[number.len() - 4..].to_string(),
                month: 12,
                year: now.year() + 1,
            };
            return Ok((method, failure));
        }
        PayChoice::Konbini { store } => {
            let store = store.unwrap_or_else(|| KONBINI_BRANDS[0].to_string());
            if !KONBINI_BRANDS.contains(&store.as_str()) {
                return Err(format!("Unknown store {store}."));
            }
            Method::Konbini {
                store,
                confirmation_code: Some(digits(6)),
                receipt: digits(11),
            }
        }
        PayChoice::PayPay => Method::PayPay {
            external_payment_id: digits(19),
        },
        PayChoice::BankTransfer => Method::BankTransfer {
            order_id: digits(10),
            account_number: digits(7),
        },
        PayChoice::PayEasy => Method::PayEasy {
            bank_id: "58191".into(),
            customer_id: digits(20),
            confirmation_id: digits(6),
        },
    };
    Ok((method, None))
}

/// The brand of a card number by its first digits: `visa` (SDK example), `master` (the
/// WooCommerce fixture), `jcb` (SDK example); `american_express` and `diners_club` are
/// guesses at KOMOJU's slugs.
fn card_brand(number: &str) -> &'static str {
    match number.as_bytes() {
        [b'3', b'5', ..] => "jcb",
        [b'3', b'4' | b'7', ..] => "american_express",
        [b'3', b'0' | b'6' | b'8', ..] => "diners_club",
        [b'5', ..] | [b'2', ..] => "master",
        _ => "visa",
    }
}
