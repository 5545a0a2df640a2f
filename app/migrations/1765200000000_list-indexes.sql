-- Up Migration

-- Lists that scale (app/src/pages.ts): every list pages newest first by (created_at DESC, id
-- DESC), the next page starting after the last row of the previous one. Each list statement has
-- an index that returns its rows in that order, for a project key (project first) and for an
-- admin key (over every project), so that the first page and a page deep in the list read the
-- same few index entries at 10^4 rows and at 10^6.
DROP INDEX models_project_created_idx;
CREATE INDEX models_project_created_idx ON models (project, created_at DESC, id DESC);
CREATE INDEX models_created_idx ON models (created_at DESC, id DESC);
CREATE INDEX models_project_state_created_idx ON models (project, state, created_at DESC, id DESC);
CREATE INDEX models_state_created_idx ON models (state, created_at DESC, id DESC);
-- A batch's models, newest first (the start of a batch reads them by batch_id too).
DROP INDEX models_batch_idx;
CREATE INDEX models_batch_idx ON models (batch_id, created_at DESC, id DESC) WHERE batch_id IS NOT NULL;
-- By content: the SHA-256 of the upload (few models share one).
CREATE INDEX models_sha256_idx ON models (content_sha256, created_at DESC, id DESC) WHERE content_sha256 IS NOT NULL;
-- Name prefix: a range on the bytes of the name (`name COLLATE "C" >= prefix AND < the next
-- prefix`), which a B-tree of the "C" collation serves whatever the database's collation.
CREATE INDEX models_project_name_idx ON models (project, (name COLLATE "C"));
CREATE INDEX models_name_idx ON models ((name COLLATE "C"));

DROP INDEX batches_project_idx;
CREATE INDEX batches_project_idx ON batches (project, created_at DESC, id DESC);
CREATE INDEX batches_created_idx ON batches (created_at DESC, id DESC);

DROP INDEX webhook_deliveries_webhook_idx;
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

-- Down Migration
DROP INDEX webhook_deliveries_webhook_idx;
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC);
DROP INDEX batches_created_idx;
DROP INDEX batches_project_idx;
CREATE INDEX batches_project_idx ON batches (project, created_at DESC);
DROP INDEX models_name_idx;
DROP INDEX models_project_name_idx;
DROP INDEX models_sha256_idx;
DROP INDEX models_batch_idx;
CREATE INDEX models_batch_idx ON models (batch_id) WHERE batch_id IS NOT NULL;
DROP INDEX models_state_created_idx;
DROP INDEX models_project_state_created_idx;
DROP INDEX models_created_idx;
DROP INDEX models_project_created_idx;
CREATE INDEX models_project_created_idx ON models (project, created_at DESC);
