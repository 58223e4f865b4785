-- Retention (issue 21, item 2): the purge takes the oldest rows first through these,
-- a batch at a time, at the same cost however large the tables grow.
CREATE INDEX notifications_delivered_at ON notifications (delivered_at) WHERE state = 'delivered';
CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
CREATE INDEX order_events_created_at ON order_events (created_at);
