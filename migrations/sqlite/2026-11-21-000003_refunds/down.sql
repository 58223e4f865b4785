ALTER TABLE orders DROP COLUMN cancel_noty_url;
DROP TABLE refunds;
