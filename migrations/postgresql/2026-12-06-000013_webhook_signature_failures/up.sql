-- Issue 20 (webhook card): KOMOJU deliveries for a mall whose signature did not hold
-- (answered 401): how many since the last correctly signed one, the first and the last.
-- One row per existing mall (written only after the mall was found), updated in place,
-- deleted when a correctly signed delivery arrives: an unsigned caller cannot grow it.
CREATE TABLE webhook_signature_failures (
    mall_id TEXT PRIMARY KEY,
    failures BIGINT NOT NULL DEFAULT 0,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL
);
