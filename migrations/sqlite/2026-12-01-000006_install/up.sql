-- Installing the app from Cafe24 (PROTOCOL.md §12).

-- The mall's OAuth tokens, sealed like the KOMOJU keys (AES-256-GCM, the mall and the
-- column as associated data). One row per mall; a refresh replaces both tokens in the
-- transaction that holds the row.
CREATE TABLE cafe24_tokens (
    mall_id TEXT PRIMARY KEY NOT NULL,
    access_token TEXT NOT NULL,
    access_expires_at TIMESTAMP NOT NULL,
    refresh_token TEXT NOT NULL,
    refresh_expires_at TIMESTAMP NOT NULL,
    scopes TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- While a refresh is in flight: until when its holder owns it (claimed by one
    -- conditional UPDATE, so two instances never refresh one mall at once).
    refresh_lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- OAuth `state` nonces: single use, bound to the browser's cookie (stored hashed) and to
-- the launching mall, valid 10 minutes.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    mall_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    lang TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);

-- What Cafe24 was told about each shop: `off`, `registering`, `on`, `unregistering`
-- for the payment gateway, and the same for the external-checkout script tag.
ALTER TABLE merchant_shops ADD COLUMN gateway_state TEXT NOT NULL DEFAULT 'off';
ALTER TABLE merchant_shops ADD COLUMN script_state TEXT NOT NULL DEFAULT 'off';
ALTER TABLE merchant_shops ADD COLUMN script_no TEXT;
