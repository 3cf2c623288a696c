CREATE TABLE partner_callbacks (
    partner_id  INTEGER PRIMARY KEY REFERENCES partners(id),
    url         TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE upstream_polls (
    kind         TEXT    NOT NULL,
    txn_id       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_poll_at INTEGER,
    lease_owner  TEXT,
    lease_until  INTEGER,
    PRIMARY KEY (kind, txn_id)
);
CREATE INDEX upstream_polls_due ON upstream_polls (next_poll_at);
CREATE TABLE partner_events (
    id              INTEGER PRIMARY KEY,
    partner_id      INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    txn_id          INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    deliver_until   INTEGER NOT NULL,
    delivered_at    INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER
);
CREATE INDEX partner_events_due ON partner_events (state, next_attempt_at);
CREATE INDEX partner_events_by_txn ON partner_events (kind, txn_id, id);
CREATE INDEX partner_events_by_partner ON partner_events (partner_id, id);
CREATE TABLE delivery_attempts (
    event_id     INTEGER NOT NULL REFERENCES partner_events(id),
    attempt      INTEGER NOT NULL,
    instance     TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    http_status  INTEGER,
    error        TEXT,
    PRIMARY KEY (event_id, attempt)
);
