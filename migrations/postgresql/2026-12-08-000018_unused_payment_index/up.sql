-- No statement reads orders by KOMOJU's payment id (a webhook finds its order by session,
-- by the metadata this service set, or by `external_order_num`; a cancellation compares
-- the payment id of the order it already holds), so this index was write cost alone: a
-- capture moved its entry from NULL to KOMOJU's random id, a leaf of its own among a
-- million entries (issue 21; docs/benchmarks.md, "Three runs on SQLite").
DROP INDEX orders_komoju_payment_id;
