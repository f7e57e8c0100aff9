-- Metric summaries and experiment keys (PostgreSQL). Keep in step with migrations/sqlite.
--
-- latest_metrics already holds each (run, key)'s last point; it also keeps the minimum, maximum
-- and number of points, updated in the transaction that writes the points. NaN points are
-- counted but left out of min and max (NULL while every point is NaN).
ALTER TABLE latest_metrics ADD COLUMN min_value DOUBLE PRECISION;
ALTER TABLE latest_metrics ADD COLUMN max_value DOUBLE PRECISION;
ALTER TABLE latest_metrics ADD COLUMN value_count BIGINT NOT NULL DEFAULT 0;
UPDATE latest_metrics
   SET min_value = s.min_value, max_value = s.max_value, value_count = s.value_count
  FROM (SELECT run_uuid, key,
               MIN(CASE WHEN is_nan = 0 THEN value END) AS min_value,
               MAX(CASE WHEN is_nan = 0 THEN value END) AS max_value,
               COUNT(*) AS value_count
          FROM metrics GROUP BY run_uuid, key) AS s
 WHERE s.run_uuid = latest_metrics.run_uuid AND s.key = latest_metrics.key;

-- The distinct metric, param and tag keys of each experiment's runs with the number of runs
-- (active or deleted) that have each: the column picker searches 12,000 keys without grouping
-- every run's rows. Counted when a run first gets a key, uncounted when a tag is deleted.
CREATE TABLE experiment_keys (
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    kind          TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    runs          BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, kind, key)
);
INSERT INTO experiment_keys (experiment_id, kind, key, runs)
    SELECT r.experiment_id, 'metric', m.key, COUNT(*)
      FROM latest_metrics m JOIN runs r ON r.run_uuid = m.run_uuid
     GROUP BY r.experiment_id, m.key;
INSERT INTO experiment_keys (experiment_id, kind, key, runs)
    SELECT r.experiment_id, 'param', p.key, COUNT(*)
      FROM params p JOIN runs r ON r.run_uuid = p.run_uuid
     GROUP BY r.experiment_id, p.key;
INSERT INTO experiment_keys (experiment_id, kind, key, runs)
    SELECT r.experiment_id, 'tag', t.key, COUNT(*)
      FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid
     GROUP BY r.experiment_id, t.key;
