-- Registry webhooks and their delivery log (SQLite). Keep in step with migrations/postgres.
CREATE TABLE webhooks (
    id           INTEGER PRIMARY KEY,
    url          TEXT   NOT NULL,
    secret       TEXT   NOT NULL,
    events       TEXT   NOT NULL,
    model_name   TEXT,
    created_time BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  BIGINT NOT NULL,
    event_id    BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    delivered   BIGINT NOT NULL,
    time        BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
