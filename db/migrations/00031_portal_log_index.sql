-- +goose NO TRANSACTION
-- +goose Up
-- The portal's message log lists an app's deliveries newest first, with or without a status.
-- Built concurrently: deliveries is the largest table, and a plain CREATE INDEX would block its
-- writes (every delivery's) for the whole build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_app_created ON deliveries (app_id, created_at DESC, id DESC);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS deliveries_app_created;
