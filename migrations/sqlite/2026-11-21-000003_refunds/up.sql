-- Cancellation requests from Cafe24: one row per request, with its own KOMOJU
-- idempotency key stored before the call (SQLite).
CREATE TABLE refunds (
    id TEXT PRIMARY KEY NOT NULL,
    order_pk TEXT NOT NULL REFERENCES orders (id),
    mode TEXT NOT NULL CHECK (mode IN ('sync', 'async')),
    operation TEXT NOT NULL CHECK (operation IN ('refund', 'cancel')),
    fingerprint TEXT NOT NULL,
    cancel_amount BIGINT NOT NULL CHECK (cancel_amount > 0),
    cancel_amount_text TEXT NOT NULL,
    tid TEXT NOT NULL,
    cancel_noty_url TEXT,
    extra_data TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    komoju_request TEXT NOT NULL,
    komoju_refund_id TEXT,
    state TEXT NOT NULL,
    reply_status INTEGER,
    reply_body TEXT,
    confirmed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX refunds_order_fingerprint ON refunds (order_pk, fingerprint, created_at);
CREATE INDEX refunds_state ON refunds (state, updated_at);
CREATE INDEX refunds_komoju_refund_id ON refunds (komoju_refund_id);

ALTER TABLE orders ADD COLUMN cancel_noty_url TEXT;
