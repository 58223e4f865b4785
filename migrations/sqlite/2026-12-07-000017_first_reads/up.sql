-- Reconciliation reads never-read orders first, then the least recently read (issue 21,
-- the capacity limit of docs/capacity.md): both sweeps walk this index in order, the
-- first on `reconciled_at IS NULL` by `updated_at`, the second by `reconciled_at`.
CREATE INDEX orders_state_reconciled_at ON orders (state, reconciled_at, updated_at);
-- It replaces the passes' former index, which nothing else reads: every order update (a
-- webhook's too) keeps as many indexes as before.
DROP INDEX orders_state_updated_at;
