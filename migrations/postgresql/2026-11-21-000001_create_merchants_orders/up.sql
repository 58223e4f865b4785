-- Merchants (Cafe24 malls), their shops, orders and the order audit trail (PostgreSQL).
-- All times are UTC. Amounts are integers in the currency's minor unit.
CREATE TABLE merchants (
    mall_id TEXT PRIMARY KEY NOT NULL,
    public_ref TEXT NOT NULL,
    komoju_secret_key TEXT NOT NULL,      -- AES-256-GCM sealed, never plaintext
    komoju_webhook_secret TEXT NOT NULL,  -- AES-256-GCM sealed, never plaintext
    payment_types TEXT NOT NULL,          -- comma-separated KOMOJU payment types
    locale TEXT NOT NULL,
    cancel_mode TEXT NOT NULL CHECK (cancel_mode IN ('sync', 'async')),
    allowed_hosts TEXT NOT NULL,          -- comma-separated extra callback hosts
    paymethod_codes TEXT NOT NULL,        -- comma-separated type=code overrides
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE merchant_shops (
    mall_id TEXT NOT NULL REFERENCES merchants (mall_id),
    shop_no INTEGER NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (mall_id, shop_no)
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    mall_id TEXT NOT NULL REFERENCES merchants (mall_id),
    order_id TEXT NOT NULL,
    shop_no INTEGER NOT NULL,
    partner_id TEXT NOT NULL,
    flow TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    amount_text TEXT NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL,
    return_url TEXT NOT NULL,
    return_noty_url TEXT,
    extra_data TEXT,
    request_fields TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    komoju_idempotency_key TEXT NOT NULL,
    external_order_num TEXT NOT NULL,
    komoju_session_request TEXT NOT NULL,
    komoju_session_id TEXT,
    komoju_session_url TEXT,
    komoju_payment_id TEXT,
    payment_type TEXT,
    captured_amount BIGINT,
    captured_currency TEXT,
    refunded_amount BIGINT NOT NULL DEFAULT 0,
    pending_notice_sent BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (mall_id, order_id)
);
CREATE UNIQUE INDEX orders_komoju_session_id ON orders (komoju_session_id);
CREATE UNIQUE INDEX orders_external_order_num ON orders (mall_id, external_order_num);
CREATE INDEX orders_komoju_payment_id ON orders (komoju_payment_id);

CREATE TABLE order_events (
    id BIGSERIAL PRIMARY KEY,
    order_pk TEXT NOT NULL REFERENCES orders (id),
    source TEXT NOT NULL,
    event TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    applied BOOLEAN NOT NULL,
    detail TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX order_events_order_pk ON order_events (order_pk);
