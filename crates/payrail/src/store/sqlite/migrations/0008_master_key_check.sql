-- issue 9 item 10: the master key's check value, one row.
CREATE TABLE master_key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    mac        BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
