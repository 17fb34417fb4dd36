-- +goose Up
-- The event catalog (issue 28): a registered event may carry a JSON Schema for its data, example
-- payloads (each valid against the schema) and a deprecation note. Constant defaults and nullable
-- columns: instant, no table rewrite.
ALTER TABLE registered_events
	ADD COLUMN schema jsonb,
	ADD COLUMN examples jsonb,
	ADD COLUMN deprecated boolean NOT NULL DEFAULT false,
	ADD COLUMN deprecation_note text NOT NULL DEFAULT '' CHECK (char_length(deprecation_note) <= 1000);

-- The catalog pages across topics and publishers by (app_id, topic, name).
CREATE INDEX registered_events_catalog ON registered_events (app_id, topic, name, id) WHERE deleted_at IS NULL;

-- A test send is an event of kind 'test' with one delivery, to one subscription, marked test.
ALTER TABLE events DROP CONSTRAINT events_kind_check,
	ADD CONSTRAINT events_kind_check CHECK (kind IN ('event', 'callback', 'test')) NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_kind_check;
ALTER TABLE deliveries ADD COLUMN test boolean NOT NULL DEFAULT false;
-- The per-subscription rate limit of test sends counts the last minute's.
CREATE INDEX deliveries_tests ON deliveries (subscription_id, created_at) WHERE test;

-- +goose Down
DROP INDEX deliveries_tests;
ALTER TABLE deliveries DROP COLUMN test;
DELETE FROM events WHERE kind = 'test';
ALTER TABLE events DROP CONSTRAINT events_kind_check,
	ADD CONSTRAINT events_kind_check CHECK (kind IN ('event', 'callback'));
DROP INDEX registered_events_catalog;
ALTER TABLE registered_events DROP COLUMN schema, DROP COLUMN examples, DROP COLUMN deprecated,
	DROP COLUMN deprecation_note;
