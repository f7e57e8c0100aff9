-- Webhooks made through MLflow's webhook API (postgres; keep in step with migrations/sqlite).
-- They live beside twinloop's own in webhooks, sharing ids and the delivery log; protocol tells
-- them apart, and their events are MLflow's entity.action names. A registry event keeps the
-- request details MLflow's payloads repeat (tags, description, source, run, the tag set).
ALTER TABLE webhooks ADD COLUMN protocol TEXT NOT NULL DEFAULT 'twinloop';
ALTER TABLE webhooks ADD COLUMN external_id TEXT;
ALTER TABLE webhooks ADD COLUMN name TEXT;
ALTER TABLE webhooks ADD COLUMN description TEXT;
ALTER TABLE webhooks ADD COLUMN active BIGINT NOT NULL DEFAULT 1;
ALTER TABLE webhooks ADD COLUMN last_updated_time BIGINT;
CREATE UNIQUE INDEX webhooks_by_external_id ON webhooks (external_id);
ALTER TABLE registry_events ADD COLUMN detail TEXT;
