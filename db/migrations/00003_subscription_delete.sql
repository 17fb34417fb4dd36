-- +goose Up
-- Deleted subscriptions stay as rows (their deliveries and ledger keep pointing at them) but are
-- gone for their owner and never match again.
ALTER TABLE subscriptions ADD COLUMN deleted_at timestamptz;

-- +goose Down
ALTER TABLE subscriptions DROP COLUMN deleted_at;
