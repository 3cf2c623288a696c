CREATE TABLE wallets (
    partner_id INTEGER PRIMARY KEY REFERENCES partners(id),
    balance    INTEGER NOT NULL CHECK (balance >= 0)
);
CREATE TABLE journals (
    id         INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    purpose    TEXT    NOT NULL,
    kind       TEXT,
    txn_id     INTEGER,
    memo       TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
CREATE UNIQUE INDEX journals_once_per_txn ON journals (kind, txn_id, purpose);
CREATE INDEX journals_by_partner ON journals (partner_id, at);
CREATE TABLE postings (
    id         INTEGER PRIMARY KEY,
    journal_id INTEGER NOT NULL REFERENCES journals(id),
    account    TEXT    NOT NULL,
    amount     INTEGER NOT NULL
);
CREATE INDEX postings_by_journal ON postings (journal_id);
CREATE INDEX postings_by_account ON postings (account);
CREATE TABLE fee_plans (
    partner_id     INTEGER NOT NULL REFERENCES partners(id),
    version        INTEGER NOT NULL,
    effective_from INTEGER NOT NULL,
    plan           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (partner_id, version)
);
CREATE TABLE remitters (
    partner_id INTEGER NOT NULL REFERENCES partners(id),
    mobile     TEXT    NOT NULL,
    first_name TEXT,
    last_name  TEXT,
    kyc_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (partner_id, mobile)
);
CREATE TABLE beneficiaries (
    id             INTEGER PRIMARY KEY,
    partner_id     INTEGER NOT NULL,
    remitter_mobile TEXT   NOT NULL,
    name           TEXT    NOT NULL,
    account        TEXT    NOT NULL,
    ifsc           TEXT    NOT NULL,
    bank_name      TEXT,
    created_at     INTEGER NOT NULL,
    deleted_at     INTEGER,
    FOREIGN KEY (partner_id, remitter_mobile) REFERENCES remitters(partner_id, mobile)
);
CREATE INDEX beneficiaries_by_remitter ON beneficiaries (partner_id, remitter_mobile);
CREATE TABLE otps (
    token      TEXT    PRIMARY KEY,
    partner_id INTEGER NOT NULL,
    purpose    TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    code_hash  BLOB    NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    used       INTEGER NOT NULL
);
CREATE TABLE dmt_routes (
    ackno           INTEGER PRIMARY KEY REFERENCES dmt_transfers(ackno),
    partner_id      INTEGER NOT NULL,
    remitter_mobile TEXT    NOT NULL,
    beneficiary_id  INTEGER NOT NULL,
    bank            INTEGER NOT NULL,
    mode            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX dmt_routes_by_remitter ON dmt_routes (partner_id, remitter_mobile, bank, created_at);
