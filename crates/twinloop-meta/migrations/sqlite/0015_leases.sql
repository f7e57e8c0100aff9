-- Leases (sqlite; keep in step with migrations/postgres): which replica runs a background loop
-- (webhook delivery, monitors, pipeline triggers). A holder renews before expires_at (the
-- database's clock, in ms); another takes it over once it has expired, and token grows by one
-- with each new holder, so a late write of a replaced holder is refused (fencing). cursor is
-- where the holder's loop has got to, handed on with the lease.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    cursor     INTEGER
);
