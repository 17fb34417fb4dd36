-- +goose Up
-- Event ids are the publisher's own (unique per app). events.id becomes the internal key
-- "<app id>/<event id>" for new events, which keeps workflow ids, webhook-ids and foreign keys
-- unique across apps; client_id is the id the publisher chose.
ALTER TABLE events ADD COLUMN client_id text;
UPDATE events SET client_id = id;
ALTER TABLE events ALTER COLUMN client_id SET NOT NULL;
CREATE UNIQUE INDEX events_client_id ON events (app_id, client_id);

-- +goose Down
DROP INDEX events_client_id;
ALTER TABLE events DROP COLUMN client_id;
