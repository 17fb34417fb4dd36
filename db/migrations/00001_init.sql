-- +goose Up
CREATE TABLE apps (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    permissions   text[] NOT NULL DEFAULT '{}',
    api_key_hash  bytea NOT NULL UNIQUE,
    -- signs per-request callbacks sent to this app
    secret        text NOT NULL,
    contact_email text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE registered_events (
    id           bigserial PRIMARY KEY,
    app_id       text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    topic        text NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    event_type   text NOT NULL,
    filter_logic jsonb,
    type         text NOT NULL DEFAULT '',
    get_api_path text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, topic, name)
);
CREATE INDEX registered_events_match ON registered_events (app_id, event_type);

CREATE TABLE subscriptions (
    id                   text PRIMARY KEY,
    app_id               text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    -- whose events: the owner's own (publisher_app_id = app_id) or a registered event of another app
    publisher_app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    registered_event_id  bigint REFERENCES registered_events(id) ON DELETE CASCADE,
    url                  text NOT NULL,
    secret               text NOT NULL,
    previous_secret      text,
    previous_secret_until timestamptz,
    callback_key         text,
    event_types          text[] NOT NULL DEFAULT '{}',
    filter_logic         jsonb,
    contact_email        text NOT NULL DEFAULT '',
    active               boolean NOT NULL DEFAULT true,
    disabled_reason      text NOT NULL DEFAULT '',
    consecutive_failures integer NOT NULL DEFAULT 0,
    retry_initial_ms     bigint,
    retry_backoff        double precision,
    retry_max_interval_ms bigint,
    retry_max_attempts   integer,
    retry_max_duration_ms bigint,
    timeout_ms           bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_publisher ON subscriptions (publisher_app_id) WHERE active;
CREATE INDEX subscriptions_owner ON subscriptions (app_id, created_at);

CREATE TABLE events (
    -- seq gives polling a stable order and cursor
    seq          bigserial UNIQUE,
    id           text PRIMARY KEY,
    app_id       text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    topic        text NOT NULL DEFAULT '',
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    workflow_id  text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- set by the workflow once deliveries exist; a NULL here after a while means the
    -- workflow never started (API crashed in between) and the reconciler starts it
    dispatched_at timestamptz
);
CREATE INDEX events_undispatched ON events (received_at) WHERE dispatched_at IS NULL;
CREATE INDEX events_app_seq ON events (app_id, seq);

CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    event_id         text NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    -- NULL for one-off callbacks that name their URL on the request
    subscription_id  text REFERENCES subscriptions(id) ON DELETE SET NULL,
    app_id           text NOT NULL,
    url              text NOT NULL,
    -- 0 for the original delivery, n for the n-th replay
    replay           integer NOT NULL DEFAULT 0,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending','succeeded','failed','cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status      integer,
    last_error       text NOT NULL DEFAULT '',
    workflow_id      text NOT NULL DEFAULT '',
    notified_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (event_id, coalesce(subscription_id, url), replay);
CREATE INDEX deliveries_app_status ON deliveries (app_id, status, created_at);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, created_at);

CREATE TABLE delivery_attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      text NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    request_headers  jsonb NOT NULL DEFAULT '{}',
    response_status  integer,
    response_headers jsonb,
    response_body    text NOT NULL DEFAULT '',
    error            text NOT NULL DEFAULT '',
    duration_ms      bigint NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL,
    -- the exactly-once guarantee: a retried activity cannot add a second row for one attempt
    UNIQUE (delivery_id, attempt)
);

-- +goose Down
DROP TABLE delivery_attempts;
DROP TABLE deliveries;
DROP TABLE events;
DROP TABLE subscriptions;
DROP TABLE registered_events;
DROP TABLE apps;
