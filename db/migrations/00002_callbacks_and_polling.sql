-- +goose Up
-- kind 'callback': a one-off callback to target_url, signed with the app's secret, not fanned out.
ALTER TABLE events ADD COLUMN kind text NOT NULL DEFAULT 'event' CHECK (kind IN ('event', 'callback'));
ALTER TABLE events ADD COLUMN target_url text;
-- notify_url: the caller's ?callbackURL=, told when every delivery of the event has finished
ALTER TABLE events ADD COLUMN notify_url text;
-- The polling cursor orders by the inserting transaction, so a page never skips a row that an
-- older, still-open transaction commits later: rows are listed only once every transaction that
-- could precede them has finished (pg_snapshot_xmin).
ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_poll ON events (app_id, txid, seq);
CREATE INDEX deliveries_event_app ON deliveries (app_id, event_id);

-- +goose Down
DROP INDEX deliveries_event_app;
DROP INDEX events_poll;
ALTER TABLE events DROP COLUMN txid, DROP COLUMN notify_url, DROP COLUMN target_url, DROP COLUMN kind;
