DROP INDEX order_events_created_at;
DROP INDEX webhook_events_received_at;
DROP INDEX notifications_delivered_at;
