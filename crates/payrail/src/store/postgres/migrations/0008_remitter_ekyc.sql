-- Issue 11 (remitter e-KYC): attempts per mobile, and the KYC records a
-- registration uses once. Neither the Aadhaar number nor the fingerprint
-- data is stored.
CREATE TABLE ekyc_attempts (
    mobile       TEXT    NOT NULL,
    attempted_at BIGINT  NOT NULL
);
CREATE INDEX ekyc_attempts_by_mobile ON ekyc_attempts (mobile, attempted_at);
CREATE TABLE remitter_kycs (
    kyc_id      TEXT    PRIMARY KEY,
    partner_id  BIGINT  NOT NULL,
    mobile      TEXT    NOT NULL,
    upstream_id TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    used_at     BIGINT
);
CREATE INDEX remitter_kycs_by_time ON remitter_kycs (created_at);
