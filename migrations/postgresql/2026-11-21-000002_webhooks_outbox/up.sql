-- KOMOJU webhook events seen (de-duplication) and the outbox of notifications to Cafe24 (PostgreSQL).
CREATE TABLE webhook_events (
    mall_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    order_pk TEXT,
    outcome TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (mall_id, event_id)
);

CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    order_pk TEXT NOT NULL REFERENCES orders (id),
    kind TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    target_url TEXT NOT NULL,
    encoding TEXT NOT NULL CHECK (encoding IN ('form', 'json')),
    fields TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_expires_at TIMESTAMP,
    last_status INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
CREATE INDEX notifications_order_pk ON notifications (order_pk);

ALTER TABLE merchants ADD COLUMN notify_encoding TEXT NOT NULL DEFAULT 'form';
