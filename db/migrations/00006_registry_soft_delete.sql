-- +goose Up
-- Removing a registered event must never destroy another app's data: the event row is kept and
-- marked removed, subscriptions to it are disabled with a reason, their deliveries and ledgers stay.
ALTER TABLE registered_events ADD COLUMN deleted_at timestamptz;
ALTER TABLE registered_events DROP CONSTRAINT registered_events_app_id_topic_name_key;
CREATE UNIQUE INDEX registered_events_name ON registered_events (app_id, topic, name) WHERE deleted_at IS NULL;

-- Nothing cascades from one app's rows into another's any more.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_registered_event_id_fkey,
    ADD CONSTRAINT subscriptions_registered_event_id_fkey FOREIGN KEY (registered_event_id)
        REFERENCES registered_events(id) NOT VALID;
ALTER TABLE subscriptions VALIDATE CONSTRAINT subscriptions_registered_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscription_id_fkey,
    ADD CONSTRAINT deliveries_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES subscriptions(id) NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_subscription_id_fkey;

-- When the contact of a subscription disabled by the removal of its event was told.
ALTER TABLE subscriptions ADD COLUMN removal_notified_at timestamptz;
CREATE INDEX subscriptions_registered_event ON subscriptions (registered_event_id) WHERE registered_event_id IS NOT NULL;

-- +goose Down
DROP INDEX subscriptions_registered_event;
ALTER TABLE subscriptions DROP COLUMN removal_notified_at;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscription_id_fkey,
    ADD CONSTRAINT deliveries_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES subscriptions(id) ON DELETE SET NULL;
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_registered_event_id_fkey,
    ADD CONSTRAINT subscriptions_registered_event_id_fkey FOREIGN KEY (registered_event_id)
        REFERENCES registered_events(id) ON DELETE CASCADE;
DELETE FROM registered_events WHERE deleted_at IS NOT NULL;
DROP INDEX registered_events_name;
ALTER TABLE registered_events ADD CONSTRAINT registered_events_app_id_topic_name_key UNIQUE (app_id, topic, name);
ALTER TABLE registered_events DROP COLUMN deleted_at;
