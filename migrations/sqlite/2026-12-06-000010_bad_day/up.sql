-- Issue 18 (items 6 and 9), SQLite.
--
-- The outbox per host: each notification names the host it goes to (`host[:port]` of its
-- target URL, as the service computes it), and `outbox_hosts` holds each host's
-- back-off, shared by its rows: consecutive failed attempts and when the next may start.
ALTER TABLE notifications ADD COLUMN target_host TEXT;
UPDATE notifications
   SET target_host = lower(
       CASE WHEN instr(substr(target_url, instr(target_url, '://') + 3), '/') > 0
            THEN substr(substr(target_url, instr(target_url, '://') + 3), 1,
                        instr(substr(target_url, instr(target_url, '://') + 3), '/') - 1)
            ELSE substr(target_url, instr(target_url, '://') + 3) END)
 WHERE instr(target_url, '://') > 0;
CREATE INDEX notifications_host_due ON notifications (target_host, state, next_attempt_at);

CREATE TABLE outbox_hosts (
    host TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);

-- External checkout: the largest amount (minor units of the shop's currency) a
-- reservation Cafe24 could not confirm may carry, per shop; no row, no such ceiling.
CREATE TABLE external_checkout_limits (
    mall_id TEXT NOT NULL,
    shop_no INTEGER NOT NULL,
    max_minor BIGINT NOT NULL CHECK (max_minor > 0),
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (mall_id, shop_no)
);
