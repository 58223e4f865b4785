DROP TABLE duplicate_payments;
ALTER TABLE refunds DROP COLUMN bank_account_url;
ALTER TABLE merchants DROP COLUMN refund_duplicates;
ALTER TABLE orders DROP COLUMN charged_currency;
ALTER TABLE orders DROP COLUMN charged_amount;
ALTER TABLE orders ADD COLUMN captured_currency TEXT;
UPDATE orders SET captured_currency = currency WHERE captured_amount IS NOT NULL;
