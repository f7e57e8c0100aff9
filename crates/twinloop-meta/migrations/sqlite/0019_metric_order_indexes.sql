-- Indexes a search ordered by a metric walks (sqlite). Keep in step with migrations/postgres.
--
-- A search ordered first by a metric's last value reads the runs where it is a number in
-- order from this index and stops at the page, rather than sorting every run of the experiment.
CREATE INDEX latest_metrics_by_key_value ON latest_metrics (key, value);
-- How many runs of each experiment have a metric, summed over experiments for one key: whether
-- walking that key's index pays off for the experiments searched.
CREATE INDEX experiment_keys_by_key ON experiment_keys (kind, key);
