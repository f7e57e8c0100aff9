-- The timestamps' extent of each rollup cell (SQLite). Keep in step with migrations/postgres.
--
-- A time-axis series folds a cell whole when its smallest and greatest timestamp fall in one
-- bucket and splits it into its four children otherwise (sql/series.rs), so a chart of a million
-- points over time reads cells, not rows. Kept by the same upsert as the other columns
-- (sql/rollups.rs). Existing cells are filled here rather than on first read: the read then
-- never has to tell a filled cell from an unfilled one, and this is one indexed pass over the
-- metrics, as 0010's backfill was.
ALTER TABLE metric_rollups ADD COLUMN min_timestamp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE metric_rollups ADD COLUMN max_timestamp BIGINT NOT NULL DEFAULT 0;

-- Level 2 from the finite points of its 16 steps, then each level from its four children.
UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(m.timestamp) FROM metrics m
                         WHERE m.run_uuid = metric_rollups.run_uuid AND m.key = metric_rollups.key
                           AND m.step BETWEEN metric_rollups.cell * 16 AND metric_rollups.cell * 16 + 15
                           AND m.is_nan = 0
                           AND m.value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308),
       max_timestamp = (SELECT MAX(m.timestamp) FROM metrics m
                         WHERE m.run_uuid = metric_rollups.run_uuid AND m.key = metric_rollups.key
                           AND m.step BETWEEN metric_rollups.cell * 16 AND metric_rollups.cell * 16 + 15
                           AND m.is_nan = 0
                           AND m.value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308)
 WHERE level = 2;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 2
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 2
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 3;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 3
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 3
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 4;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 4
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 4
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 5;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 5
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 5
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 6;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 6
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 6
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 7;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 7
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 7
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 8;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 8
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 8
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 9;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 9
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 9
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 10;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 10
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 10
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 11;

UPDATE metric_rollups
   SET min_timestamp = (SELECT MIN(c.min_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 11
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3),
       max_timestamp = (SELECT MAX(c.max_timestamp) FROM metric_rollups c
                         WHERE c.run_uuid = metric_rollups.run_uuid AND c.key = metric_rollups.key AND c.level = 11
                           AND c.cell BETWEEN metric_rollups.cell * 4 AND metric_rollups.cell * 4 + 3)
 WHERE level = 12;
