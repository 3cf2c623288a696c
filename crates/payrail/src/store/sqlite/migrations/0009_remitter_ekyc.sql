-- Issue 11 (remitter e-KYC): attempts per mobile, and the KYC records a
-- registration uses once. Neither the Aadhaar number nor the fingerprint
-- data is stored.
CREATE TABLE ekyc_attempts (
    mobile       TEXT    NOT NULL,
    attempted_at INTEGER NOT NULL
);
CREATE INDEX ekyc_attempts_by_mobile ON ekyc_attempts (mobile, attempted_at);
CREATE TABLE remitter_kycs (
    kyc_id      TEXT    PRIMARY KEY,
    partner_id  INTEGER NOT NULL,
    mobile      TEXT    NOT NULL,
    upstream_id TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX remitter_kycs_by_time ON remitter_kycs (created_at);
