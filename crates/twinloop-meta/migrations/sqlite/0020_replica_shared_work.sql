-- Work replicas share through the store (sqlite; keep in step with migrations/postgres).
--
-- What a canary's candidate has answered, summed over every replica that serves it, so that the
-- replica deciding the canary judges all of its traffic, not its own share. One row per
-- (deployment, served model, version, bucket): bucket -1 counts failed requests, a bucket b >= 0
-- the requests whose latency fell in it (twinloop-serving's served.rs). Each replica adds what it
-- served since its last write; the decider reads the sums when a step ends.
CREATE TABLE canary_traffic (
    deployment TEXT   NOT NULL,
    model      TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    bucket     INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (deployment, model, version, bucket)
);

-- When someone asked to cancel a pipeline run: the replica executing it, whichever took the
-- request, sees it here and ends it.
ALTER TABLE pipeline_runs ADD COLUMN cancel_requested_ms INTEGER;
