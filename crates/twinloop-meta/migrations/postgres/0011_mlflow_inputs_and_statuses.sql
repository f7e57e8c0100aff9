-- MLflow's names and orders for run inputs and logged-model statuses (PostgreSQL). Keep in step with
-- migrations/sqlite.

-- A logged model whose upload failed is LOGGED_MODEL_UPLOAD_FAILED, MLflow's name for it.
UPDATE logged_models SET status = 'LOGGED_MODEL_UPLOAD_FAILED' WHERE status = 'LOGGED_MODEL_FAILED';

-- A run's dataset inputs come back in the order they were first logged. Inputs logged before
-- this column share position 0 and keep their old order (name, digest) among themselves.
ALTER TABLE run_inputs ADD COLUMN position BIGINT NOT NULL DEFAULT 0;

-- The logged models a run read (log-inputs' models), in the order they were first logged.
CREATE TABLE run_model_inputs (
    run_uuid TEXT   NOT NULL REFERENCES runs (run_uuid),
    model_id TEXT   NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
);
