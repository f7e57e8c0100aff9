-- Which replica executes a pipeline run (SQLite). Keep in step with migrations/postgres.
--
-- The name of the executing replica's liveness lease (a row of `leases` it renews while it
-- lives). The holder of the `pipelines` lease settles a QUEUED or RUNNING run only when that
-- lease has expired, so a replica never fails a run another live replica is executing. NULL for
-- runs recorded before replicas were told apart: those belong to no live replica.
ALTER TABLE pipeline_runs ADD COLUMN executor TEXT;
