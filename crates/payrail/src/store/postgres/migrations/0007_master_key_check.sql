-- issue 9 item 10: the master key's check value, one row.
CREATE TABLE master_key_check (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    mac        BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);
