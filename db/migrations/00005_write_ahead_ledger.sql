-- +goose Up
-- Write-ahead ledger: an attempt's row is written ('sending') before its POST and completed after it,
-- so every request a receiver ever saw has a row. A row left 'sending' by a worker that died is
-- marked 'interrupted' (outcome unknown) by whoever takes the delivery over.
ALTER TABLE delivery_attempts ADD COLUMN state text NOT NULL DEFAULT 'completed'
    CHECK (state IN ('sending', 'completed', 'interrupted'));
-- Each row is written twice (claimed, then completed); room on its page lets the second write be a
-- heap-only update (no index touched: the columns it sets are not indexed).
ALTER TABLE delivery_attempts SET (fillfactor = 85);
-- group_id: the workflow waiting for this delivery to end (its event's, or a replay's). Whichever
-- delivery of a group ends last signals it, so fan-outs of any size need no child workflows.
ALTER TABLE deliveries ADD COLUMN group_id text;
CREATE INDEX deliveries_group_pending ON deliveries (group_id) WHERE status = 'pending';
-- reconciled_at: when the orphan reconciler last checked that a pending delivery has a workflow.
ALTER TABLE deliveries ADD COLUMN reconciled_at timestamptz;
CREATE INDEX deliveries_pending_since ON deliveries ((coalesce(reconciled_at, updated_at))) WHERE status = 'pending';
-- Fan-outs read their targets in pages ordered by id.
CREATE INDEX subscriptions_publisher_page ON subscriptions (publisher_app_id, id) WHERE active AND registered_event_id IS NULL;
CREATE INDEX subscriptions_registered_page ON subscriptions (registered_event_id, id) WHERE active;

-- +goose Down
DROP INDEX subscriptions_registered_page;
DROP INDEX subscriptions_publisher_page;
DROP INDEX deliveries_pending_since;
ALTER TABLE deliveries DROP COLUMN reconciled_at;
DROP INDEX deliveries_group_pending;
ALTER TABLE deliveries DROP COLUMN group_id;
ALTER TABLE delivery_attempts RESET (fillfactor);
ALTER TABLE delivery_attempts DROP COLUMN state;
