-- +goose Up
-- Long-running operations an app starts (recover), with their parameters and state; their
-- progress is counted from the deliveries they made (group_id = their workflow).
CREATE TABLE operations (
    id          text PRIMARY KEY,
    app_id      text NOT NULL REFERENCES apps (id),
    kind        text NOT NULL,
    params      jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'running',
    workflow_id text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX operations_finished ON operations (finished_at) WHERE finished_at IS NOT NULL;

-- The recover operation that replayed a failed delivery: a delivery is recovered at most once,
-- however many recovers cover it. Nullable without default: instant.
ALTER TABLE deliveries ADD COLUMN recovered_by text;

-- An operation's replays, counted for its progress (replays are few: the index stays small).
CREATE INDEX deliveries_group ON deliveries (group_id) WHERE group_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_group;
ALTER TABLE deliveries DROP COLUMN recovered_by;
DROP TABLE operations;
