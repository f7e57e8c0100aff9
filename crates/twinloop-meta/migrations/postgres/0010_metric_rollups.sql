-- The rollup pyramid of metric series (PostgreSQL). Keep in step with migrations/sqlite.
--
-- Per (run, key) and level 2 to 12, one row per cell of 4^level steps (cell = floor(step /
-- 4^level)) that holds a finite value: how many such points, their min and max, and the last of
-- them by (step, timestamp, value). A chart of a million points then reads a few thousand rows
-- (sql/series.rs). Kept in the transaction that logs the points (sql/rollups.rs); NaN and
-- ±Infinity are left out, as series leave them out.
CREATE TABLE metric_rollups (
    run_uuid       TEXT             NOT NULL REFERENCES runs (run_uuid),
    key            TEXT             NOT NULL,
    level          BIGINT           NOT NULL,
    cell           BIGINT           NOT NULL,
    points         BIGINT           NOT NULL,
    min_value      DOUBLE PRECISION NOT NULL,
    max_value      DOUBLE PRECISION NOT NULL,
    last_step      BIGINT           NOT NULL,
    last_timestamp BIGINT           NOT NULL,
    last_value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_uuid, key, level, cell)
);

-- The points already stored: level 2 from the metrics (floor division written so that no step,
-- however negative, overflows), then each level from the one below.
INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 2, cell, points, min_value, max_value, step, timestamp, value
  FROM (SELECT run_uuid, key, cell, step, timestamp, value,
               COUNT(*) OVER w AS points, MIN(value) OVER w AS min_value, MAX(value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, cell
                                  ORDER BY step DESC, timestamp DESC, value DESC) AS nth
          FROM (SELECT run_uuid, key, step, timestamp, value,
                       step / 16 - CASE WHEN step % 16 < 0 THEN 1 ELSE 0 END AS cell
                  FROM metrics
                 WHERE is_nan = 0
                   AND value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308) AS finite
        WINDOW w AS (PARTITION BY run_uuid, key, cell)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 3, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 2) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 4, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 3) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 5, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 4) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 6, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 5) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 7, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 6) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 8, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 7) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 9, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 8) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 10, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 9) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 11, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 10) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;

INSERT INTO metric_rollups (run_uuid, key, level, cell, points, min_value, max_value, last_step, last_timestamp, last_value)
SELECT run_uuid, key, 12, parent, points, min_value, max_value, last_step, last_timestamp, last_value
  FROM (SELECT run_uuid, key, parent, last_step, last_timestamp, last_value,
               SUM(points) OVER w AS points, MIN(min_value) OVER w AS min_value, MAX(max_value) OVER w AS max_value,
               ROW_NUMBER() OVER (PARTITION BY run_uuid, key, parent
                                  ORDER BY last_step DESC, last_timestamp DESC, last_value DESC) AS nth
          FROM (SELECT run_uuid, key, points, min_value, max_value, last_step, last_timestamp, last_value,
                       cell / 4 - CASE WHEN cell % 4 < 0 THEN 1 ELSE 0 END AS parent
                  FROM metric_rollups WHERE level = 11) AS children
        WINDOW w AS (PARTITION BY run_uuid, key, parent)) AS ranked
 WHERE nth = 1;
