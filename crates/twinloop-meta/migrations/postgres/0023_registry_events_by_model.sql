-- A model's registry events by id (postgres). Keep in step with migrations/sqlite.
--
-- The model page's timeline reads one model's events newest first, a page at a time
-- (`model_name = … AND id < … ORDER BY id DESC LIMIT 50`), and the rename walk reads its
-- latest create or rename event the same way: without this index, a scan of every model's
-- events for each.
CREATE INDEX registry_events_by_model ON registry_events (model_name, id);
