-- +goose Up
-- seq comes from its own sequence and is only read through events_poll: its unique index cost an
-- index entry on every insert and on every update of an event row, and guarded nothing.
ALTER TABLE events DROP CONSTRAINT events_seq_key;

-- +goose Down
ALTER TABLE events ADD CONSTRAINT events_seq_key UNIQUE (seq);
