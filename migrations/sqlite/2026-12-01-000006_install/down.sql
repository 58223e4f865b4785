ALTER TABLE merchant_shops DROP COLUMN script_no;
ALTER TABLE merchant_shops DROP COLUMN script_state;
ALTER TABLE merchant_shops DROP COLUMN gateway_state;
DROP TABLE oauth_states;
DROP TABLE cafe24_tokens;
