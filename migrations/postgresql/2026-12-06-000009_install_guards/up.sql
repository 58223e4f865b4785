-- Install guards (issue 17 items 6-9, issue 18 items 1-3 and 8; PROTOCOL.md §12).

-- Each launch URL is single use: the SHA-256 of its `hmac`, kept until the launch's
-- window (its `timestamp` + CAFE24_LAUNCH_MAX_AGE_SECS) has passed; expired rows are
-- purged when a launch is recorded.
CREATE TABLE launch_uses (
    hmac_hash TEXT PRIMARY KEY NOT NULL,
    mall_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX launch_uses_expires_at ON launch_uses (expires_at);

-- The mall's session generation: every settings session carries the generation it was
-- issued at, and every request checks it against this row; a disconnect (or a confirmed
-- app-deleted event) adds one, which ends every session of the mall on every instance.
CREATE TABLE mall_sessions (
    mall_id TEXT PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Cafe24 lifecycle events: when the mall's removal was last confirmed with an Admin API
-- call (at most one a minute per mall), and since when an event waits for the next one.
CREATE TABLE lifecycle_checks (
    mall_id TEXT PRIMARY KEY NOT NULL,
    checked_at TIMESTAMP NOT NULL,
    pending_since TIMESTAMP
);
