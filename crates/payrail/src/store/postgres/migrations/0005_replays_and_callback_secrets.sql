-- Issue 9 items 6, 7, 22, 23 (replays, callback secrets, orderly delivery).
CREATE TABLE upstream_reqids (
    reqid   TEXT   PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX upstream_reqids_by_age ON upstream_reqids (seen_at);
ALTER TABLE partner_events ADD COLUMN redelivered_at BIGINT;
CREATE TABLE partner_callback_secrets (
    partner_id            BIGINT PRIMARY KEY REFERENCES partners(id),
    secret                BYTEA  NOT NULL,
    previous_secret       BYTEA,
    previous_secret_until BIGINT,
    updated_at            BIGINT NOT NULL
);
