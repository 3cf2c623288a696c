-- The tamper-evident history (issue 15, item 6; store::chain): every
-- status-history row and every journal is a link of its partner's hash
-- chain, sealed by the transaction that writes it. A journal keeps the id
-- of that transaction (`xid`, as history rows do since 0017) so that the
-- transaction finds its own rows. The rows written before this version are
-- chained right after this file runs, in the same transaction
-- (migrations::migrate).
ALTER TABLE status_history ADD COLUMN chain_partner BIGINT;
ALTER TABLE status_history ADD COLUMN chain_seq BIGINT;
ALTER TABLE status_history ADD COLUMN chain_prev TEXT;
ALTER TABLE status_history ADD COLUMN chain_hash TEXT;
ALTER TABLE journals ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE journals ADD COLUMN chain_seq BIGINT;
ALTER TABLE journals ADD COLUMN chain_prev TEXT;
ALTER TABLE journals ADD COLUMN chain_hash TEXT;
CREATE INDEX status_history_unsealed ON status_history (xid) WHERE chain_hash IS NULL;
CREATE INDEX journals_unsealed ON journals (xid) WHERE chain_hash IS NULL;
CREATE UNIQUE INDEX status_history_chain ON status_history (chain_partner, chain_seq);
CREATE UNIQUE INDEX journals_chain ON journals (partner_id, chain_seq);
CREATE TABLE chain_heads (
    partner_id BIGINT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    last       TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);
