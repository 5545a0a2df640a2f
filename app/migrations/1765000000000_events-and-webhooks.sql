-- Up Migration

-- Model events: written by a trigger in the same transaction as the change they describe (an
-- outbox), so no state change is lost between PostgreSQL and the notifications. Read by the
-- api's event stream (GET /api/v1/events) and by the workers' webhook dispatcher.
CREATE TABLE model_events (
  id bigserial PRIMARY KEY,
  project text NOT NULL,
  model_id uuid NOT NULL,
  type text NOT NULL CHECK (type IN ('model.queued', 'model.converting', 'model.ready', 'model.failed', 'model.deleted')),
  model jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set once deliveries were created for every webhook of the project.
  dispatched_at timestamptz
);
CREATE INDEX model_events_project_idx ON model_events (project, id);
CREATE INDEX model_events_undispatched_idx ON model_events (id) WHERE dispatched_at IS NULL;

CREATE FUNCTION cadfleet_model_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO model_events (project, model_id, type, model) VALUES (OLD.project, OLD.id, 'model.deleted', to_jsonb(OLD));
    RETURN OLD;
  END IF;
  IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state OR (NEW.state = 'converting' AND NEW.progress IS DISTINCT FROM OLD.progress) THEN
    INSERT INTO model_events (project, model_id, type, model) VALUES (NEW.project, NEW.id, 'model.' || NEW.state, to_jsonb(NEW));
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
DROP TABLE model_events;
