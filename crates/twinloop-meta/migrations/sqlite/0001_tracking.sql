-- Tracking schema (SQLite). Keep in step with migrations/postgres: same tables, same columns.
CREATE TABLE experiments (
    experiment_id     INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT    NOT NULL,
    lifecycle_stage   TEXT    NOT NULL,
    creation_time     BIGINT  NOT NULL,
    last_update_time  BIGINT  NOT NULL
);

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    key           TEXT   NOT NULL,
    value         TEXT   NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;

CREATE TABLE runs (
    run_uuid        TEXT   PRIMARY KEY,
    experiment_id   BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name            TEXT   NOT NULL,
    user_id         TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    start_time      BIGINT,
    end_time        BIGINT,
    artifact_uri    TEXT   NOT NULL,
    lifecycle_stage TEXT   NOT NULL,
    deleted_time    BIGINT
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, start_time);

CREATE TABLE params (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;

CREATE TABLE tags (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;

-- Full history. A NaN is stored as value 0 with is_nan = 1 so that the key stays comparable.
CREATE TABLE metrics (
    run_uuid  TEXT             NOT NULL REFERENCES runs (run_uuid),
    key       TEXT             NOT NULL,
    step      BIGINT           NOT NULL,
    timestamp BIGINT           NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    BIGINT           NOT NULL,
    PRIMARY KEY (run_uuid, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;

-- The latest value per (run, key): highest step, then highest timestamp. Searched and ordered on.
CREATE TABLE latest_metrics (
    run_uuid  TEXT             NOT NULL REFERENCES runs (run_uuid),
    key       TEXT             NOT NULL,
    step      BIGINT           NOT NULL,
    timestamp BIGINT           NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    BIGINT           NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;

CREATE TABLE datasets (
    dataset_uuid  TEXT   PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name          TEXT   NOT NULL,
    digest        TEXT   NOT NULL,
    source_type   TEXT   NOT NULL,
    source        TEXT   NOT NULL,
    schema        TEXT,
    profile       TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE run_inputs (
    run_uuid     TEXT NOT NULL REFERENCES runs (run_uuid),
    dataset_uuid TEXT NOT NULL REFERENCES datasets (dataset_uuid),
    context      TEXT,
    tags         TEXT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid)
) WITHOUT ROWID;

CREATE TABLE run_outputs (
    run_uuid TEXT   NOT NULL REFERENCES runs (run_uuid),
    model_id TEXT   NOT NULL,
    step     BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
) WITHOUT ROWID;

CREATE TABLE logged_models (
    model_id                  TEXT   PRIMARY KEY,
    experiment_id             BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name                      TEXT   NOT NULL,
    artifact_uri              TEXT   NOT NULL,
    status                    TEXT   NOT NULL,
    model_type                TEXT   NOT NULL,
    source_run_id             TEXT   NOT NULL,
    creation_timestamp_ms     BIGINT NOT NULL,
    last_updated_timestamp_ms BIGINT NOT NULL,
    lifecycle_stage           TEXT   NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_timestamp_ms);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;

CREATE TABLE logged_model_metrics (
    model_id       TEXT             NOT NULL,
    run_uuid       TEXT             NOT NULL,
    key            TEXT             NOT NULL,
    step           BIGINT           NOT NULL,
    timestamp      BIGINT           NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    is_nan         BIGINT           NOT NULL,
    dataset_name   TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (model_id, key, step, timestamp, run_uuid, value, is_nan)
) WITHOUT ROWID;
