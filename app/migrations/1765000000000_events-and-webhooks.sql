-- Up Migration

-- Batches: uploads held together, started at once, followed as one (FOQUS-style sessions).
CREATE TABLE batches (
  id uuid PRIMARY KEY,
  project text NOT NULL,
  name text,
  state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'started', 'ended')),
  created_by_key text REFERENCES api_keys (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  ended_at timestamptz
);
CREATE INDEX batches_project_idx ON batches (project, created_at DESC);
ALTER TABLE models ADD COLUMN batch_id uuid REFERENCES batches (id) ON DELETE SET NULL;
ALTER TABLE uploads ADD COLUMN batch_id uuid REFERENCES batches (id) ON DELETE SET NULL;
CREATE INDEX models_batch_idx ON models (batch_id) WHERE batch_id IS NOT NULL;

-- Events: written by triggers in the same transaction as the change they describe (an outbox),
-- so no state change is lost between PostgreSQL and the notifications. Read by the api's event
-- stream (GET /api/v1/events) and by the workers' webhook dispatcher. `data` is the model row
-- (model.*) or the batch with its counts (batch.ended).
CREATE TABLE model_events (
  id bigserial PRIMARY KEY,
  project text NOT NULL,
  model_id uuid,
  batch_id uuid,
  type text NOT NULL CHECK (type IN ('model.queued', 'model.converting', 'model.ready', 'model.failed', 'model.deleted', 'batch.ended')),
  data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set once deliveries were created for every webhook of the project.
  dispatched_at timestamptz
);
CREATE INDEX model_events_project_idx ON model_events (project, id);
CREATE INDEX model_events_undispatched_idx ON model_events (id) WHERE dispatched_at IS NULL;

-- A started batch whose models have all ended (ready or failed) ends, once: the batch row is
-- locked first, so of two models ending at once the second sees the first.
CREATE FUNCTION cadfleet_batch_check(batch uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b batches%ROWTYPE;
  counts jsonb;
BEGIN
  SELECT * INTO b FROM batches WHERE id = batch FOR UPDATE;
  IF NOT FOUND OR b.state <> 'started' THEN RETURN; END IF;
  IF EXISTS (SELECT 1 FROM models WHERE batch_id = batch AND state IN ('queued', 'converting')) THEN RETURN; END IF;
  UPDATE batches SET state = 'ended', ended_at = now() WHERE id = batch RETURNING * INTO b;
  SELECT jsonb_build_object('queued', 0, 'converting', 0,
           'ready', count(*) FILTER (WHERE state = 'ready'), 'failed', count(*) FILTER (WHERE state = 'failed'))
    INTO counts FROM models WHERE batch_id = batch;
  INSERT INTO model_events (project, batch_id, type, data) VALUES (b.project, b.id, 'batch.ended', to_jsonb(b) || jsonb_build_object('counts', counts));
END $$;

CREATE FUNCTION cadfleet_model_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO model_events (project, model_id, batch_id, type, data) VALUES (OLD.project, OLD.id, OLD.batch_id, 'model.deleted', to_jsonb(OLD));
    IF OLD.batch_id IS NOT NULL THEN PERFORM cadfleet_batch_check(OLD.batch_id); END IF;
    RETURN OLD;
  END IF;
  IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state OR (NEW.state = 'converting' AND NEW.progress IS DISTINCT FROM OLD.progress) THEN
    INSERT INTO model_events (project, model_id, batch_id, type, data) VALUES (NEW.project, NEW.id, NEW.batch_id, 'model.' || NEW.state, to_jsonb(NEW));
  END IF;
  IF NEW.batch_id IS NOT NULL AND NEW.state IN ('ready', 'failed') AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state) THEN
    PERFORM cadfleet_batch_check(NEW.batch_id);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER models_events AFTER INSERT OR UPDATE OR DELETE ON models FOR EACH ROW EXECUTE FUNCTION cadfleet_model_event();

-- Webhook endpoints of a project. The secret signs deliveries (HMAC-SHA256); it is shown once,
-- at creation, and kept here because signing needs it.
CREATE TABLE webhooks (
  id uuid PRIMARY KEY,
  project text NOT NULL,
  url text NOT NULL,
  secret text NOT NULL,
  events text[] NOT NULL,
  description text,
  created_by_key text REFERENCES api_keys (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_project_idx ON webhooks (project);

-- One event to one endpoint, with its attempts. The event id is the receiver's idempotency id.
CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY,
  webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id bigint NOT NULL REFERENCES model_events (id) ON DELETE CASCADE,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_status integer,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  delivered_at timestamptz,
  UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC);

-- Down Migration
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TRIGGER models_events ON models;
DROP FUNCTION cadfleet_model_event();
DROP FUNCTION cadfleet_batch_check(uuid);
DROP TABLE model_events;
ALTER TABLE models DROP COLUMN batch_id;
ALTER TABLE uploads DROP COLUMN batch_id;
DROP TABLE batches;
