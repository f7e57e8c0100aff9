-- Pipelines registered with `twinloop pipeline apply`, their runs and trigger events (SQLite).
-- Keep in step with migrations/postgres.
CREATE TABLE pipelines (
    name       TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    spec       TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    repo       TEXT   NOT NULL,
    file       TEXT   NOT NULL,
    applied_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE pipeline_runs (
    id           TEXT   NOT NULL PRIMARY KEY,
    pipeline     TEXT   NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT   NOT NULL,
    trigger_kind TEXT   NOT NULL,
    cause        TEXT   NOT NULL,
    params       TEXT   NOT NULL,
    chain        TEXT   NOT NULL,
    reason       TEXT,
    created_ms   BIGINT NOT NULL,
    started_ms   BIGINT,
    ended_ms     BIGINT
);
CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline, created_ms);
CREATE INDEX pipeline_runs_by_state ON pipeline_runs (state, created_ms);

-- The unique index is the exactly-once rule: an event (a monitor event id, a registry event
-- id, a tick) is recorded once per trigger, in the transaction that inserts its run.
CREATE TABLE pipeline_trigger_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline      TEXT   NOT NULL,
    trigger_index BIGINT NOT NULL,
    dedup_key     TEXT   NOT NULL,
    outcome       TEXT   NOT NULL,
    reason        TEXT,
    run_id        TEXT,
    at_ms         BIGINT NOT NULL
);
CREATE UNIQUE INDEX pipeline_trigger_events_once
    ON pipeline_trigger_events (pipeline, trigger_index, dedup_key);

CREATE TABLE pipeline_cursors (
    pipeline TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (pipeline, name)
);
