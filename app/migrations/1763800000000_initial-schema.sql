-- Up Migration

-- API keys. Only a SHA-256 of the whole key is stored; the key id (its public prefix) finds
-- the row and the hash is compared in constant time.
CREATE TABLE api_keys (
  id text PRIMARY KEY,
  project text NOT NULL CHECK (project ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  name text,
  admin boolean NOT NULL DEFAULT false,
  secret_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_project_idx ON api_keys (project);

-- One uploaded file and its conversion. The queue job id is the model id.
CREATE TABLE models (
  id uuid PRIMARY KEY,
  project text NOT NULL,
  name text NOT NULL,
  format text NOT NULL,
  quality text NOT NULL DEFAULT 'normal' CHECK (quality IN ('coarse', 'normal', 'fine')),
  state text NOT NULL CHECK (state IN ('queued', 'converting', 'ready', 'failed')),
  progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
  error text,
  error_code text,
  input_key text NOT NULL,
  input_bytes bigint NOT NULL,
  output_prefix text,
  stats jsonb,
  attempts integer NOT NULL DEFAULT 0,
  -- The worker that converted it (or is converting it): host name and registry node id.
  worker_host text,
  worker_node text,
  created_by_key text REFERENCES api_keys (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX models_project_created_idx ON models (project, created_at DESC);
CREATE INDEX models_queued_idx ON models (created_at) WHERE state = 'queued';

-- Every time a worker starts a conversion, and how that run ended. The run of a worker that
-- died is marked 'lost' when another run starts; only one run per model can be 'ready'.
CREATE TABLE conversion_attempts (
  id bigserial PRIMARY KEY,
  model_id uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  job_id text NOT NULL,
  attempt integer NOT NULL,
  worker_node text NOT NULL,
  worker_host text NOT NULL,
  worker_pid integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  outcome text CHECK (outcome IN ('ready', 'failed', 'retry', 'skipped', 'lost')),
  error text,
  converter_seconds double precision
);
CREATE INDEX conversion_attempts_model_idx ON conversion_attempts (model_id);
CREATE UNIQUE INDEX conversion_attempts_one_ready_idx ON conversion_attempts (model_id) WHERE outcome = 'ready';

-- Presigned uploads: created by POST /api/v1/uploads, turned into a model (same id) by
-- POST /api/v1/uploads/:id/complete.
CREATE TABLE uploads (
  id uuid PRIMARY KEY,
  project text NOT NULL,
  name text NOT NULL,
  format text NOT NULL,
  quality text NOT NULL DEFAULT 'normal',
  size bigint NOT NULL,
  object_key text NOT NULL,
  created_by_key text REFERENCES api_keys (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  completed_at timestamptz
);
CREATE INDEX uploads_project_idx ON uploads (project);

-- Down Migration
DROP TABLE uploads;
DROP TABLE conversion_attempts;
DROP TABLE models;
DROP TABLE api_keys;
