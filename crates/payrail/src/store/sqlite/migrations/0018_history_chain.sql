-- The tamper-evident history (issue 15, item 6; store::chain): every
-- status-history row and every journal is a link of its partner's hash
-- chain. The rows written before this version are chained right after this
-- file runs, in the same transaction, in id order (migrations::migrate).
ALTER TABLE status_history ADD COLUMN chain_partner INTEGER;
ALTER TABLE status_history ADD COLUMN chain_seq INTEGER;
ALTER TABLE status_history ADD COLUMN chain_prev TEXT;
ALTER TABLE status_history ADD COLUMN chain_hash TEXT;
ALTER TABLE journals ADD COLUMN chain_seq INTEGER;
ALTER TABLE journals ADD COLUMN chain_prev TEXT;
ALTER TABLE journals ADD COLUMN chain_hash TEXT;
CREATE INDEX status_history_unsealed ON status_history (id) WHERE chain_hash IS NULL;
CREATE INDEX journals_unsealed ON journals (id) WHERE chain_hash IS NULL;
CREATE UNIQUE INDEX status_history_chain ON status_history (chain_partner, chain_seq);
CREATE UNIQUE INDEX journals_chain ON journals (partner_id, chain_seq);
CREATE TABLE chain_heads (
    partner_id INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    last       TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
