-- +goose Up
-- Unused since polling moved to events_poll (00002): it only cost an index entry per event write.
DROP INDEX events_app_seq;

-- +goose Down
CREATE INDEX events_app_seq ON events (app_id, seq);
