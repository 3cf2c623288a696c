-- Issue 13: the web console's sessions. Only a SHA-256 of each session id
-- is kept; a session ends after a time without requests (the server's
-- setting) or at logout, and with its operator's account when disabled.
CREATE TABLE console_sessions (
    id_hash      BLOB    PRIMARY KEY,
    operator_id  INTEGER NOT NULL REFERENCES operators(id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_at);
