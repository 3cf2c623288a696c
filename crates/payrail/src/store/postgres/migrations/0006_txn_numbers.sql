-- Issue 9 item 24: new ackno/txnid are a keyed permutation of a counter
-- (domain::txn_id); the secret is written at first connect (see
-- `txn_numbers`). Rows made before keep their numbers.
CREATE TABLE txn_number_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  TEXT    NOT NULL
);
CREATE SEQUENCE dmt_number_counter MINVALUE 0 START 0;
CREATE SEQUENCE bbps_number_counter MINVALUE 0 START 0;
