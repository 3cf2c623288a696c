-- The change feed reads history rows of transactions that have ended, in
-- (xid, id) order: each row keeps the id of the transaction that wrote it.
-- Rows written before this version all get this migration's transaction id
-- (they keep their id order).
ALTER TABLE status_history ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX status_history_feed ON status_history (xid, id);
