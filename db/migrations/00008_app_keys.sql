-- +goose Up
-- An app may hold several API keys, each revocable on its own (rotation without downtime).
CREATE TABLE app_keys (
    id         text PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key_hash   bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX app_keys_app ON app_keys (app_id, created_at);
INSERT INTO app_keys (id, app_id, key_hash, created_at)
    SELECT 'key_' || substr(md5(id), 1, 16), id, api_key_hash, created_at FROM apps;
ALTER TABLE apps DROP COLUMN api_key_hash;

-- +goose Down
ALTER TABLE apps ADD COLUMN api_key_hash bytea;
UPDATE apps a SET api_key_hash = (SELECT k.key_hash FROM app_keys k WHERE k.app_id = a.id AND k.revoked_at IS NULL
    ORDER BY k.created_at LIMIT 1);
DELETE FROM apps WHERE api_key_hash IS NULL;
ALTER TABLE apps ALTER COLUMN api_key_hash SET NOT NULL, ADD CONSTRAINT apps_api_key_hash_key UNIQUE (api_key_hash);
DROP TABLE app_keys;
