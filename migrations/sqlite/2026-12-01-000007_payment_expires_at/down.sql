DROP INDEX orders_state_updated_at;
ALTER TABLE orders DROP COLUMN payment_expires_at;
