-- Issue 9 item 24: new ackno/txnid are a keyed permutation of a counter
-- (domain::txn_id); the secret is written at first open (see
-- `txn_numbers`). Rows made before keep their numbers.
CREATE TABLE txn_number_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  TEXT    NOT NULL
);
CREATE TABLE txn_number_counters (
    kind  TEXT    PRIMARY KEY,
    next  INTEGER NOT NULL
);
INSERT INTO txn_number_counters (kind, next) VALUES ('dmt', 0), ('bbps', 0);
