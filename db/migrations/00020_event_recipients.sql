-- +goose Up
-- The apps other than its publisher that an event was delivered to, in the event's poll order
-- (txid, seq): GET /v1/events lists a subscriber's events from here a page at a time. Before,
-- it read every delivery the caller ever had (SELECT DISTINCT event_id) to answer one page.
-- One row per (event, app), whatever the number of subscriptions and replays.
CREATE TABLE event_recipients (
    event_id text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    app_id   text NOT NULL,
    txid     xid8 NOT NULL,
    seq      bigint NOT NULL,
    PRIMARY KEY (event_id, app_id)
);
CREATE INDEX event_recipients_poll ON event_recipients (app_id, txid, seq);

INSERT INTO event_recipients (event_id, app_id, txid, seq)
SELECT DISTINCT d.event_id, d.app_id, e.txid, e.seq FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.app_id <> e.app_id;

-- Kept by the database as deliveries are created (a fan-out page's statement, a replay), once
-- per statement: the fan-out's code is unchanged, and a row that exists costs a conflict only.
-- Rows are inserted in key order, so two statements naming the same keys cannot deadlock.
-- +goose StatementBegin
CREATE FUNCTION deliveries_recipients() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_recipients (event_id, app_id, txid, seq)
    SELECT DISTINCT n.event_id, n.app_id, e.txid, e.seq FROM new_rows n JOIN events e ON e.id = n.event_id
    WHERE n.app_id <> e.app_id
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER deliveries_recipients AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_recipients();

-- +goose Down
DROP TRIGGER deliveries_recipients ON deliveries;
DROP FUNCTION deliveries_recipients();
DROP TABLE event_recipients;
