-- Issue 12: the upstream's ids beside payrail's. A remitter's id at the
-- upstream (Paysprint keys remitters by mobile unless it names an id) and a
-- beneficiary's `bene_id` there, which transfers are sent with. NULL: not
-- registered upstream (the manual provider, or made before this version;
-- a transfer registers such a beneficiary upstream first).
ALTER TABLE remitters ADD COLUMN upstream_id TEXT;
ALTER TABLE beneficiaries ADD COLUMN upstream_id TEXT;
