-- Reconciliation (issue 11): when the order's konbini / bank-transfer / Pay-easy code
-- expires, as KOMOJU said it (the payment's `payment_deadline`, or
-- `payment_details.expires_at`), so that a pass reads the payment at its expiry even
-- when KOMOJU's `payment.expired` webhook never comes. NULL when unknown or not a code.
ALTER TABLE orders ADD COLUMN payment_expires_at TIMESTAMP;
-- The passes look orders up by state, least recently changed first.
CREATE INDEX orders_state_updated_at ON orders (state, updated_at);
