-- Up Migration

-- Archives and reuse by content.
--   archive: 'zip' when the upload is an archive; the model's format is then its root file's.
--   archive_root: the file inside the archive that the converter opens.
--   content_sha256: SHA-256 (hex) of the uploaded bytes, taken while they were stored (or while
--     the worker downloaded them, for presigned uploads).
--   converter_version: the release that converted it; outputs are reused only within one.
--   reused_from: the ready model whose stored outputs this model points at (no conversion ran).
--   reuse: false when the client asked for a conversion of its own.
ALTER TABLE models
  ADD COLUMN archive text CHECK (archive IN ('zip')),
  ADD COLUMN archive_root text,
  ADD COLUMN content_sha256 text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
  ADD COLUMN converter_version text,
  ADD COLUMN reused_from uuid,
  ADD COLUMN reuse boolean NOT NULL DEFAULT true;
CREATE INDEX models_reuse_idx ON models (project, content_sha256) WHERE state = 'ready';
CREATE INDEX models_output_prefix_idx ON models (output_prefix);

-- A worker that finds a ready model for the same bytes records its run as 'reused'.
ALTER TABLE conversion_attempts DROP CONSTRAINT conversion_attempts_outcome_check;
ALTER TABLE conversion_attempts ADD CONSTRAINT conversion_attempts_outcome_check
  CHECK (outcome IN ('ready', 'failed', 'retry', 'skipped', 'lost', 'reused'));

ALTER TABLE uploads
  ADD COLUMN archive text CHECK (archive IN ('zip')),
  ADD COLUMN archive_root text,
  ADD COLUMN reuse boolean NOT NULL DEFAULT true;

-- Down Migration
ALTER TABLE uploads DROP COLUMN reuse, DROP COLUMN archive_root, DROP COLUMN archive;
ALTER TABLE conversion_attempts DROP CONSTRAINT conversion_attempts_outcome_check;
ALTER TABLE conversion_attempts ADD CONSTRAINT conversion_attempts_outcome_check
  CHECK (outcome IN ('ready', 'failed', 'retry', 'skipped', 'lost'));
DROP INDEX models_output_prefix_idx;
DROP INDEX models_reuse_idx;
ALTER TABLE models DROP COLUMN reuse, DROP COLUMN reused_from, DROP COLUMN converter_version, DROP COLUMN content_sha256, DROP COLUMN archive_root, DROP COLUMN archive;
