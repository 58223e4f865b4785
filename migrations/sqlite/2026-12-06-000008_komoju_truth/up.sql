-- Issue 17: the service follows the real KOMOJU (PROTOCOL.md §5, §6, §7, §8).
--
-- `captured_currency` was always the order's own currency: dropped (the orders table stays
-- within diesel's 32 columns).
ALTER TABLE orders DROP COLUMN captured_currency;
-- What KOMOJU charged when it converted the currency (a buyer paying a USD session with a
-- method that takes only JPY): the payment's own amount and currency. NULL when KOMOJU
-- charged the order's currency. `captured_amount` stays in the order's currency (what
-- Cafe24 hears).
ALTER TABLE orders ADD COLUMN charged_amount BIGINT;
ALTER TABLE orders ADD COLUMN charged_currency TEXT;
-- A second capture for an order already paid is refunded in full automatically unless the
-- merchant turns this off (§5 "duplicate payment").
ALTER TABLE merchants ADD COLUMN refund_duplicates BOOLEAN NOT NULL DEFAULT 1;
-- Konbini, bank transfer and Pay-easy refunds: the refund's `redirect_url`, where the buyer
-- gives a bank account (§6.4). A capability link: sealed like the merchants' secrets.
ALTER TABLE refunds ADD COLUMN bank_account_url TEXT;
-- Duplicate payments (§5): a capture of another payment for an order already paid.
CREATE TABLE duplicate_payments (
    payment_id TEXT PRIMARY KEY,
    order_pk TEXT NOT NULL REFERENCES orders (id),
    session_id TEXT,
    payment_type TEXT,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- refund_due | refunded | refund_requested | refund_failed | kept
    state TEXT NOT NULL,
    refund_idempotency_key TEXT NOT NULL,
    komoju_refund_id TEXT,
    bank_account_url TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX duplicate_payments_order ON duplicate_payments (order_pk);
CREATE INDEX duplicate_payments_due ON duplicate_payments (state, next_attempt_at);
