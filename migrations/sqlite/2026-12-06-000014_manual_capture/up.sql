-- Manual capture (issue 20): the merchant authorizes at checkout and captures at
-- shipment (PROTOCOL.md §7 payment_data.capture, POST /payments/{id}/capture).
ALTER TABLE merchants ADD COLUMN capture TEXT NOT NULL DEFAULT 'auto';
-- Days after the authorization an uncaptured card payment is captured automatically
-- (KOMOJU: "Authorizations typically expire after 30 days").
ALTER TABLE merchants ADD COLUMN auto_capture_after_days INTEGER NOT NULL DEFAULT 7;
-- (The capture mode of an order's session is read from its stored session request,
-- orders.komoju_session_request: payment_data.capture.)
-- A held card authorization of a manual-capture order, until the order leaves
-- `authorized` (captured, cancelled or expired).
CREATE TABLE captures (
    order_pk TEXT PRIMARY KEY NOT NULL REFERENCES orders (id),
    payment_id TEXT NOT NULL,
    -- When it is captured automatically.
    due_at TIMESTAMP NOT NULL,
    -- A capture in flight until then: one KOMOJU call however many clicks or instances.
    claimed_until TIMESTAMP NULL,
    -- Why KOMOJU refused the last capture, shown to the merchant.
    error TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    -- When the order left `authorized`.
    finished_at TIMESTAMP NULL
);
CREATE INDEX captures_due ON captures (due_at) WHERE finished_at IS NULL;
