ALTER TABLE merchant_shops DROP COLUMN language_code;
ALTER TABLE merchant_shops DROP COLUMN timezone;
