-- The merchant's payments page (issue 20): a mall's orders, newest first, by keyset
-- (created_at, id), without reading the other malls' rows.
CREATE INDEX orders_mall_created ON orders (mall_id, created_at DESC, id DESC);
