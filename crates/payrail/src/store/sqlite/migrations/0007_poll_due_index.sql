-- Issue 9 (money): the poller's claim is one index range scan in due
-- order; held jobs (no due time) are outside the index.
DROP INDEX upstream_polls_due;
CREATE INDEX upstream_polls_due ON upstream_polls (next_poll_at, txn_id, kind) WHERE next_poll_at IS NOT NULL;
