-- Issue 20 (item 3): each shop's time zone and language as Cafe24's `GET /admin/shops`
-- lists them (`shops[].timezone`, an IANA name such as `Asia/Tokyo`;
-- `shops[].language_code`, e.g. `ja_JP`), refreshed whenever the shops are listed.
-- Empty until then: pages show times in Asia/Seoul for an empty or unknown zone.
ALTER TABLE merchant_shops ADD COLUMN timezone TEXT NOT NULL DEFAULT '';
ALTER TABLE merchant_shops ADD COLUMN language_code TEXT NOT NULL DEFAULT '';
