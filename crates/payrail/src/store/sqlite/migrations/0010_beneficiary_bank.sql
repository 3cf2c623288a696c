-- Issue 11: beneficiaries carry their bank (from the bank list), the
-- remitter's details for the upstream, the partner's claim of verification
-- and the name a penny drop found; penny drops and their fee journals.
ALTER TABLE beneficiaries ADD COLUMN bank_id INTEGER;
ALTER TABLE beneficiaries ADD COLUMN dob TEXT;
ALTER TABLE beneficiaries ADD COLUMN address TEXT;
ALTER TABLE beneficiaries ADD COLUMN pincode TEXT;
ALTER TABLE beneficiaries ADD COLUMN gst_state TEXT;
ALTER TABLE beneficiaries ADD COLUMN claimed_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beneficiaries ADD COLUMN verified_name TEXT;
CREATE TABLE penny_drops (
    id                INTEGER PRIMARY KEY,
    partner_id        INTEGER NOT NULL REFERENCES partners(id),
    reference         TEXT    NOT NULL,
    remitter_mobile   TEXT    NOT NULL,
    beneficiary_id    INTEGER,
    account           TEXT    NOT NULL,
    ifsc              TEXT,
    bank_id           INTEGER NOT NULL,
    name              TEXT    NOT NULL,
    fee               INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    name_at_bank      TEXT,
    debit_journal_id  INTEGER NOT NULL REFERENCES journals(id),
    refund_journal_id INTEGER REFERENCES journals(id),
    created_at        INTEGER NOT NULL,
    decided_at        INTEGER,
    UNIQUE (partner_id, reference)
);
