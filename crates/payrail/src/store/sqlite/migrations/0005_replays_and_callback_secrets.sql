-- Issue 9 items 6, 7, 22, 23 (replays, callback secrets, orderly delivery).
CREATE TABLE seen_reqid_batches (
    id           INTEGER PRIMARY KEY,
    last_seen_at INTEGER NOT NULL,
    fingerprints BLOB    NOT NULL
);
CREATE TABLE upstream_reqids (
    reqid   TEXT    PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE INDEX upstream_reqids_by_age ON upstream_reqids (seen_at);
ALTER TABLE partner_events ADD COLUMN redelivered_at INTEGER;
CREATE TABLE partner_callback_secrets (
    partner_id            INTEGER PRIMARY KEY REFERENCES partners(id),
    secret                BLOB    NOT NULL,
    previous_secret       BLOB,
    previous_secret_until INTEGER,
    updated_at            INTEGER NOT NULL
);
