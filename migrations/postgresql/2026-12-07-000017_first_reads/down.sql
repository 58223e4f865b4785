CREATE INDEX orders_state_updated_at ON orders (state, updated_at);
DROP INDEX orders_state_reconciled_at;
