DROP TABLE external_checkout_limits;
DROP TABLE outbox_hosts;
DROP INDEX notifications_host_due;
ALTER TABLE notifications DROP COLUMN target_host;
