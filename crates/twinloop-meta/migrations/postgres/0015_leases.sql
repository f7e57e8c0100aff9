-- Leases (postgres; keep in step with migrations/sqlite): which replica runs a background loop
-- (webhook delivery, monitors, pipeline triggers). A holder renews before expires_at (the
-- database's clock, in ms, so replicas' clocks never compare); another takes it over once it has
-- expired, and token grows by one with each new holder, so a late write of a replaced holder is
-- refused (fencing). cursor is where the holder's loop has got to, handed on with the lease.
CREATE TABLE leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    cursor     BIGINT
);

-- Wakes every replica's event tail when a registry event commits (notifications are delivered at
-- commit, so a listener never hears of a row it cannot read yet); replicas also poll, so a lost
-- notification only delays.
CREATE FUNCTION twinloop_registry_events_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('twinloop_registry_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER registry_events_notify AFTER INSERT ON registry_events
    FOR EACH STATEMENT EXECUTE FUNCTION twinloop_registry_events_notify();
