-- Production monitors, their metric series, ground-truth labels and events (SQLite).
-- Keep in step with migrations/postgres.
CREATE TABLE monitors (
    name        TEXT   NOT NULL PRIMARY KEY,
    spec        TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    update_time BIGINT NOT NULL
);

CREATE TABLE monitor_points (
    monitor      TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    metric       TEXT   NOT NULL,
    value        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (monitor, window_start, metric)
);

CREATE TABLE labels (
    request_id TEXT   NOT NULL PRIMARY KEY,
    label      TEXT   NOT NULL,
    time       BIGINT NOT NULL
);

CREATE TABLE monitor_events (
    id      INTEGER PRIMARY KEY,
    monitor TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    time    BIGINT NOT NULL,
    payload TEXT   NOT NULL
);
CREATE INDEX monitor_events_by_monitor ON monitor_events (monitor, id);
