-- External checkout: what the mall front's button shows, and the optional review page.
ALTER TABLE merchant_shops ADD COLUMN shop_name TEXT NOT NULL DEFAULT '';
ALTER TABLE merchant_shops ADD COLUMN currency TEXT NOT NULL DEFAULT 'JPY';
ALTER TABLE merchants ADD COLUMN external_review BOOLEAN NOT NULL DEFAULT FALSE;
