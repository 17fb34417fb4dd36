-- +goose Up
-- Throttling per subscription (rateLimit deliveries/s, maxInFlight), and the adaptive pause a 429
-- sets on the endpoint. All nullable or constant defaults: instant.
ALTER TABLE subscriptions
    ADD COLUMN rate_limit double precision,
    ADD COLUMN max_in_flight int,
    ADD COLUMN paused_until timestamptz,
    ADD COLUMN pause_ms int NOT NULL DEFAULT 0;

-- The rate limit's state (GCRA: the theoretical arrival time of the next send), one row per
-- throttled subscription, locked by every reservation: the limit holds across processes.
CREATE TABLE throttles (
    subscription_id text PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    tat             timestamptz NOT NULL DEFAULT now()
);

-- Sends in flight to a subscription with maxInFlight; a lease outlives a dead worker only until it
-- expires (the attempt's timeout and a margin).
CREATE TABLE throttle_leases (
    subscription_id text NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    lease_id        text NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, lease_id)
);

-- +goose Down
DROP TABLE throttle_leases;
DROP TABLE throttles;
ALTER TABLE subscriptions DROP COLUMN rate_limit, DROP COLUMN max_in_flight, DROP COLUMN paused_until, DROP COLUMN pause_ms;
