-- +goose Up
-- Why a subscription's filter (or its registered event's) last failed at run time (spent its
-- evaluation budget, or did not fit the event's data) and when; the event counted as "no match".
-- The fan-out writes it at most once a minute per subscription; a change of the filter clears it.
-- Constant defaults and a nullable column: instant, no table rewrite.
ALTER TABLE subscriptions
	ADD COLUMN filter_error text NOT NULL DEFAULT '' CHECK (char_length(filter_error) <= 1000),
	ADD COLUMN filter_error_at timestamptz;

-- +goose Down
ALTER TABLE subscriptions DROP COLUMN filter_error, DROP COLUMN filter_error_at;
