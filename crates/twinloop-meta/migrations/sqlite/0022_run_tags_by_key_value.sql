-- Run tags by key and value (sqlite). Keep in step with migrations/postgres.
--
-- The primary key (run_uuid, key) answers "this run's tags", not "the runs with this tag": the
-- children of a run (`mlflow.parentRunId` = its id) and the nested runs of an experiment, which
-- the runs table reads to show runs as a tree, were a scan of every tag. The table is WITHOUT
-- ROWID, so the index also holds run_uuid and answers both without reading the table.
CREATE INDEX tags_by_key_value ON tags (key, value);
