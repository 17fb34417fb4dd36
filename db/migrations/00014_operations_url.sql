-- +goose Up
-- Where hookd POSTs an app's operational webhooks (delivery.failed, subscription.disabled, ...);
-- empty: none. A constant default is instant (no table rewrite).
ALTER TABLE apps ADD COLUMN operations_url text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE apps DROP COLUMN operations_url;
