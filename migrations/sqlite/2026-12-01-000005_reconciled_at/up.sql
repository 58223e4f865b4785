-- Reconciliation: when a pass last read this order's session from KOMOJU, so that a
-- pending order is read at most once per RECONCILE_PENDING_AFTER_SECS.
ALTER TABLE orders ADD COLUMN reconciled_at TIMESTAMP;
