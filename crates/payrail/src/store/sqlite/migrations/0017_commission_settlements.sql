-- At most one commission settlement journal per partner and month (its memo).
CREATE UNIQUE INDEX journals_settlement_once ON journals (partner_id, memo) WHERE purpose = 'settlement';
