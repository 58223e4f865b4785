-- Query plans (issue 21, item 1): the operator API's order list without a mall filter
-- reads the newest orders first; without this index it read the whole table and sorted it
-- (found by tests/api/explain.rs on a seeded year).
CREATE INDEX orders_created_at ON orders (created_at DESC, id DESC);
