-- Issue 12 item 7: this installation's id, and each transaction's upstream
-- reference (without --upstream-ref-prefix), kept so that callbacks and
-- polls find a transaction by the reference it was sent with.
CREATE TABLE installation (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    installation_id TEXT    NOT NULL
);
INSERT INTO installation (singleton, installation_id) VALUES (1, upper(hex(randomblob(3))));
CREATE TABLE upstream_refs (
    kind     TEXT    NOT NULL,
    txn_id   INTEGER NOT NULL,
    ref_tail TEXT    NOT NULL UNIQUE,
    PRIMARY KEY (kind, txn_id)
);
-- Transactions made before keep the reference they were sent with.
INSERT INTO upstream_refs (kind, txn_id, ref_tail) SELECT 'dmt', ackno, 'D' || ackno FROM dmt_transfers;
INSERT INTO upstream_refs (kind, txn_id, ref_tail) SELECT 'bbps', txnid, 'B' || txnid FROM bill_payments;
