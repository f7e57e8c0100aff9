-- Ids that are never handed out again (SQLite). A plain INTEGER PRIMARY KEY gives a new row the
-- largest id + 1, so deleting the newest rows (a deleted monitor's events, a removed webhook)
-- would hand their ids out again: a pipeline that has read the monitor events up to id N
-- (`/monitors/events?after=N`) would skip new events numbered N or less, and a removed
-- webhook's id would name the next one created. PostgreSQL identity columns never reuse a
-- value, so migrations/postgres has no counterpart.
CREATE TABLE monitor_events_0007 (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    time    BIGINT NOT NULL,
    payload TEXT   NOT NULL
);
INSERT INTO monitor_events_0007 (id, monitor, kind, time, payload)
    SELECT id, monitor, kind, time, payload FROM monitor_events;
DROP TABLE monitor_events;
ALTER TABLE monitor_events_0007 RENAME TO monitor_events;
CREATE INDEX monitor_events_by_monitor ON monitor_events (monitor, id);

CREATE TABLE webhooks_0007 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    url          TEXT   NOT NULL,
    secret       TEXT   NOT NULL,
    events       TEXT   NOT NULL,
    model_name   TEXT,
    created_time BIGINT NOT NULL
);
INSERT INTO webhooks_0007 (id, url, secret, events, model_name, created_time)
    SELECT id, url, secret, events, model_name, created_time FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_0007 RENAME TO webhooks;
