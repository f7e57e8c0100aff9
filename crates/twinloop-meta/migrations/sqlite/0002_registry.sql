-- Model registry and lineage (SQLite). Keep in step with migrations/postgres.
CREATE TABLE registered_models (
    name              TEXT   PRIMARY KEY,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT
);

CREATE TABLE registered_model_tags (
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

-- Deleted versions stay (stage 'Deleted_Internal') so that numbers are never reused.
CREATE TABLE model_versions (
    name              TEXT   NOT NULL,
    version           BIGINT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description       TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    current_stage     TEXT   NOT NULL,
    source            TEXT   NOT NULL,
    run_id            TEXT   NOT NULL,
    run_link          TEXT   NOT NULL,
    status            TEXT   NOT NULL,
    model_id          TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
    name    TEXT   NOT NULL,
    version BIGINT NOT NULL,
    key     TEXT   NOT NULL,
    value   TEXT   NOT NULL,
    PRIMARY KEY (name, version, key)
);

CREATE TABLE registered_model_aliases (
    name    TEXT   NOT NULL,
    alias   TEXT   NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);

CREATE TABLE registry_events (
    id         INTEGER PRIMARY KEY,
    timestamp  BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    model_name TEXT   NOT NULL,
    version    BIGINT,
    alias      TEXT,
    before     TEXT,
    after      TEXT
);

-- Lineage in the ML Metadata model: artifacts and executions joined by input/output events,
-- grouped by contexts. external_id ties a node to what it stands for (run:<id>, …).
CREATE TABLE lineage_artifacts (
    id          INTEGER PRIMARY KEY,
    type        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    uri         TEXT,
    external_id TEXT   UNIQUE,
    properties  TEXT   NOT NULL,
    create_time BIGINT NOT NULL
);

CREATE TABLE lineage_executions (
    id          INTEGER PRIMARY KEY,
    type        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    uri         TEXT,
    external_id TEXT   UNIQUE,
    properties  TEXT   NOT NULL,
    create_time BIGINT NOT NULL
);

CREATE TABLE lineage_contexts (
    id          INTEGER PRIMARY KEY,
    type        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    uri         TEXT,
    external_id TEXT   UNIQUE,
    properties  TEXT   NOT NULL,
    create_time BIGINT NOT NULL
);

CREATE TABLE lineage_events (
    artifact_id  BIGINT NOT NULL REFERENCES lineage_artifacts (id),
    execution_id BIGINT NOT NULL REFERENCES lineage_executions (id),
    type         TEXT   NOT NULL,
    time         BIGINT NOT NULL,
    PRIMARY KEY (artifact_id, execution_id, type)
);
CREATE INDEX lineage_events_by_execution ON lineage_events (execution_id, type);

CREATE TABLE lineage_attributions (
    context_id  BIGINT NOT NULL REFERENCES lineage_contexts (id),
    artifact_id BIGINT NOT NULL REFERENCES lineage_artifacts (id),
    PRIMARY KEY (context_id, artifact_id)
);

CREATE TABLE lineage_associations (
    context_id   BIGINT NOT NULL REFERENCES lineage_contexts (id),
    execution_id BIGINT NOT NULL REFERENCES lineage_executions (id),
    PRIMARY KEY (context_id, execution_id)
);
