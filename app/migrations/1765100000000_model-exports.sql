-- Up Migration

-- Derived files of a model (targets): one row per model and format. Asked for with the upload
-- (they wait, 'queued', for the model to be ready) or later on a ready model. Each is a job of
-- its own on the workers' export queue; the file goes to models/<project>/<id>/exports/.
CREATE TABLE model_exports (
  model_id uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  format text NOT NULL CHECK (format IN ('glb', 'stl', 'obj', 'step', 'iges')),
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'converting', 'ready', 'failed')),
  error text,
  error_code text,
  object_key text,
  bytes bigint,
  triangles integer,
  seconds double precision,
  attempts integer NOT NULL DEFAULT 0,
  worker_host text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (model_id, format)
);

-- Down Migration
DROP TABLE model_exports;
