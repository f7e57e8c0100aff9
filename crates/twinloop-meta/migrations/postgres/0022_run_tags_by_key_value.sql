-- Run tags by key (postgres). Keep in step with migrations/sqlite.
--
-- The primary key (run_uuid, key) answers "this run's tags", not "the runs with this tag": the
-- nested runs of an experiment (`mlflow.parentRunId`), which the runs table reads to show runs
-- as a tree, were a scan of every tag. SQLite indexes (key, value); here value is left out, as
-- a B-tree entry may not exceed about 2.7 KB and a tag value may hold 8,000 characters, so an
-- index on it would refuse such a tag. A lookup by value reads the key's range, which for the
-- parent tag is the store's nested runs, not every tag.
CREATE INDEX tags_by_key ON tags (key, run_uuid);
