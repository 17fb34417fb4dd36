-- +goose Up
-- The API answers a publish once the event is stored and starts its workflow afterwards, from an
-- in-process outbox: started_at records (in batches) that the start went through. An event neither
-- started nor dispatched after a grace period is started by the reconciler.
ALTER TABLE events ADD COLUMN started_at timestamptz;
CREATE INDEX events_unstarted ON events (received_at) WHERE started_at IS NULL AND dispatched_at IS NULL;
DROP INDEX events_undispatched;

-- +goose Down
CREATE INDEX events_undispatched ON events (received_at) WHERE dispatched_at IS NULL;
DROP INDEX events_unstarted;
ALTER TABLE events DROP COLUMN started_at;
