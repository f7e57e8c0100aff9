-- Serving deployments: the current spec and state of each (JSON kept by twinloop-serving).
-- Keep in step with the other backend's migration of the same number.
CREATE TABLE deployments (
    name        TEXT   NOT NULL PRIMARY KEY,
    spec        TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    update_time BIGINT NOT NULL
);
