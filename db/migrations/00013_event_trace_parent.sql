-- +goose Up
-- The W3C traceparent of the publish that stored an event: its workflow, started later by the
-- outbox or the reconciler, joins that trace. NULL when tracing is off. No default: instant.
ALTER TABLE events ADD COLUMN trace_parent text;

-- +goose Down
ALTER TABLE events DROP COLUMN trace_parent;
