ALTER TABLE orders DROP COLUMN reconciled_at;
