-- Operator search (`GET /admin/v1/transactions`, `payrail txn search`):
-- one index per filter, each ending in the search order (created_at, then
-- ackno or txnid), so that a filtered page is read from its index in order.
CREATE INDEX dmt_transfers_by_time ON dmt_transfers (created_at, ackno);
CREATE INDEX dmt_transfers_by_partner ON dmt_transfers (partner_id, created_at, ackno);
CREATE INDEX dmt_transfers_by_reference ON dmt_transfers (reference_id, created_at, ackno);
CREATE INDEX dmt_transfers_by_utr ON dmt_transfers (utr, created_at, ackno);
CREATE INDEX dmt_transfers_by_account ON dmt_transfers (account, created_at, ackno);
CREATE INDEX dmt_transfers_by_status ON dmt_transfers (status, created_at, ackno);
CREATE INDEX dmt_transfers_by_amount ON dmt_transfers (amount, created_at, ackno);
CREATE INDEX dmt_routes_by_mobile ON dmt_routes (remitter_mobile);
CREATE INDEX bill_payments_by_time ON bill_payments (created_at, txnid);
CREATE INDEX bill_payments_by_partner ON bill_payments (partner_id, created_at, txnid);
CREATE INDEX bill_payments_by_reference ON bill_payments (reference_id, created_at, txnid);
CREATE INDEX bill_payments_by_ca_number ON bill_payments (ca_number, created_at, txnid);
CREATE INDEX bill_payments_by_status ON bill_payments (status, created_at, txnid);
CREATE INDEX bill_payments_by_amount ON bill_payments (amount, created_at, txnid);
