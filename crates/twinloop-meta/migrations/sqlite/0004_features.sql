-- Feature store definitions (every version) and materialization runs (SQLite). Keep in step
-- with migrations/postgres.
CREATE TABLE feature_objects (
    project     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    spec        TEXT    NOT NULL,
    deleted     BIGINT  NOT NULL,
    create_time BIGINT  NOT NULL,
    PRIMARY KEY (project, kind, name, version)
);

CREATE TABLE feature_materializations (
    id          INTEGER PRIMARY KEY,
    project     TEXT   NOT NULL,
    view        TEXT   NOT NULL,
    start_time  BIGINT NOT NULL,
    end_time    BIGINT NOT NULL,
    source_rows BIGINT NOT NULL,
    entities    BIGINT NOT NULL,
    written     BIGINT NOT NULL,
    finish_time BIGINT NOT NULL
);
CREATE INDEX feature_materializations_by_view ON feature_materializations (project, view, id);
