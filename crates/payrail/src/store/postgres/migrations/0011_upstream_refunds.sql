-- Issue 12 (refunds): the upstream's own acknowledgement number of a
-- transfer (Paysprint's `ackno`, needed to claim its refund), and the refund
-- OTP the upstream sent the remitter: the `Stateresp` payrail handed the
-- partner for it, so that `ClaimRefund` knows the OTP is the upstream's,
-- and how many claims were made with it (at most three, as payrail's own OTPs).
ALTER TABLE dmt_transfers ADD COLUMN upstream_ackno TEXT;
CREATE TABLE dmt_refund_otps (
    ackno      BIGINT PRIMARY KEY REFERENCES dmt_transfers(ackno),
    stateresp  TEXT    NOT NULL,
    attempts   BIGINT  NOT NULL DEFAULT 0,
    sent_at    BIGINT  NOT NULL
);
