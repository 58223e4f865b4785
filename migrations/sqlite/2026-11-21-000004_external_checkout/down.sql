ALTER TABLE merchants DROP COLUMN external_review;
ALTER TABLE merchant_shops DROP COLUMN currency;
ALTER TABLE merchant_shops DROP COLUMN shop_name;
