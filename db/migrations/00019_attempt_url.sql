-- +goose Up
-- Where each attempt was sent: the subscription's URL at the time of the attempt (a PATCH moves
-- the next attempt), as scheme://host/path. Its query string may hold a credential (?token=...),
-- so it is not stored: url_query_hash is the first 8 bytes of its SHA-256 in hex (NULL: none),
-- enough to tell that it changed between attempts. Nullable without default: instant, and rows
-- from before this migration say nothing.
ALTER TABLE delivery_attempts ADD COLUMN url text, ADD COLUMN url_query_hash text;

-- +goose Down
ALTER TABLE delivery_attempts DROP COLUMN url, DROP COLUMN url_query_hash;
