ALTER TABLE merchants DROP COLUMN notify_encoding;
DROP TABLE notifications;
DROP TABLE webhook_events;
