-- +goose Up
-- Idempotency-Key: the first answer to a creating POST, kept 24 h per caller and key. response is
-- sealed (it may hold a secret shown once); status is NULL while the first request runs.
CREATE TABLE idempotency_keys (
    owner       text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    status      int,
    response    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
