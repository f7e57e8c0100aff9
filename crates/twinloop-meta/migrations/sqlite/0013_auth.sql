-- Users, their permissions on experiments and registered models, and API tokens (`--auth`).
-- Keep in step with migrations/postgres. Ids are never reused: a deleted user's id must not
-- name the next one created.
CREATE TABLE auth_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT   NOT NULL UNIQUE,
    -- Argon2id, as a PHC string (parameters and salt included).
    password_hash TEXT   NOT NULL,
    is_admin      BIGINT NOT NULL,
    created_time  BIGINT NOT NULL
);

-- One level per (user, resource): an experiment id or a registered model's name.
CREATE TABLE auth_grants (
    user_id       BIGINT NOT NULL,
    resource_type TEXT   NOT NULL,
    resource_id   TEXT   NOT NULL,
    permission    TEXT   NOT NULL,
    PRIMARY KEY (user_id, resource_type, resource_id)
);
CREATE INDEX auth_grants_by_resource ON auth_grants (resource_type, resource_id);

-- Only a token's SHA-256 is kept: the token itself is shown once, when it is made.
CREATE TABLE auth_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT NOT NULL,
    digest       TEXT   NOT NULL UNIQUE,
    scope        TEXT   NOT NULL,
    description  TEXT   NOT NULL,
    created_time BIGINT NOT NULL
);
CREATE INDEX auth_tokens_by_user ON auth_tokens (user_id, id);
