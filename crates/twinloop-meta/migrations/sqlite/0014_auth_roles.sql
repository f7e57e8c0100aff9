-- MLflow 3.17's roles (`--auth`): named sets of grants in a workspace, assigned to users.
-- Keep in step with migrations/postgres. Ids are never reused: a deleted role's id must not
-- name the next one, or a stale assignment request would reach it.
CREATE TABLE auth_roles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    description TEXT,
    UNIQUE (workspace, name)
);

-- A level on one resource (`resource_pattern` is its id) or on every resource of a type (`*`).
CREATE TABLE auth_role_permissions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    role_id          BIGINT NOT NULL,
    resource_type    TEXT   NOT NULL,
    resource_pattern TEXT   NOT NULL,
    permission       TEXT   NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);

CREATE TABLE auth_role_assignments (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    role_id BIGINT NOT NULL,
    UNIQUE (user_id, role_id)
);
CREATE INDEX auth_role_assignments_by_role ON auth_role_assignments (role_id);
