CREATE TABLE partners (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    require_token         INTEGER NOT NULL,
    allow_ips             TEXT    NOT NULL,
    secret                BLOB    NOT NULL,
    previous_secret       BLOB,
    previous_secret_until INTEGER,
    authorised_key_hash   BLOB,
    created_at            INTEGER NOT NULL
);
CREATE TABLE dmt_transfers (
    ackno           INTEGER PRIMARY KEY,
    partner_id      INTEGER NOT NULL REFERENCES partners(id),
    reference_id    TEXT    NOT NULL,
    amount          INTEGER NOT NULL,
    account         TEXT    NOT NULL,
    utr             TEXT,
    status          INTEGER NOT NULL,
    customer_charge INTEGER NOT NULL,
    provider_share  INTEGER NOT NULL,
    gst             INTEGER NOT NULL,
    discount        INTEGER NOT NULL,
    commission      INTEGER NOT NULL,
    tds             INTEGER NOT NULL,
    net_commission  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    refund_txn_id   TEXT,
    refunded_at     INTEGER,
    UNIQUE (partner_id, reference_id)
);
CREATE TABLE bill_payments (
    txnid          INTEGER PRIMARY KEY,
    partner_id     INTEGER NOT NULL REFERENCES partners(id),
    reference_id   TEXT    NOT NULL,
    operator_name  TEXT    NOT NULL,
    ca_number      TEXT    NOT NULL,
    amount         INTEGER NOT NULL,
    ad1            TEXT,
    ad2            TEXT,
    ad3            TEXT,
    commission     INTEGER NOT NULL,
    tds            INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    operator_ref   TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    refund_txn_id  TEXT,
    refunded_at    INTEGER,
    UNIQUE (partner_id, reference_id)
);
CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    txn_id      INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    reason      TEXT
);
CREATE INDEX status_history_by_txn ON status_history (kind, txn_id, id);
CREATE TABLE refunds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    txn_id     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
