-- +goose Up
-- Retention deletes events by age.
CREATE INDEX events_received ON events (received_at);

-- +goose Down
DROP INDEX events_received;
