-- +goose Up
-- The subscriber portal (issue 29). A session is opened by a single-use link: token_hash is the
-- SHA-256 of the link's token until it is exchanged (then NULL), cookie_hash the SHA-256 of the
-- session cookie from then on. Neither secret is stored.
CREATE TABLE portal_sessions (
	id text PRIMARY KEY,
	app_id text NOT NULL REFERENCES apps (id),
	token_hash bytea UNIQUE,
	token_expires_at timestamptz NOT NULL,
	cookie_hash bytea UNIQUE,
	read_only boolean NOT NULL DEFAULT false,
	subscription_ids text[], -- NULL: every subscription of the app
	lifetime_s integer NOT NULL CHECK (lifetime_s BETWEEN 60 AND 2592000),
	expires_at timestamptz NOT NULL, -- the link's deadline until opened, then the session's
	created_by text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	opened_at timestamptz,
	revoked_at timestamptz
);
CREATE INDEX portal_sessions_app ON portal_sessions (app_id, created_at DESC, id);

-- Every mutating action taken in the portal.
CREATE TABLE portal_audit (
	id bigserial PRIMARY KEY,
	app_id text NOT NULL,
	session_id text NOT NULL,
	action text NOT NULL,
	target text NOT NULL DEFAULT '',
	detail text NOT NULL DEFAULT '',
	at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portal_audit_app ON portal_audit (app_id, id DESC);

-- How an app's portal looks and where it may be embedded (frame-ancestors; none by default).
CREATE TABLE portal_settings (
	app_id text PRIMARY KEY REFERENCES apps (id),
	frame_ancestors text[] NOT NULL DEFAULT '{}',
	accent_color text NOT NULL DEFAULT '',
	logo_url text NOT NULL DEFAULT '',
	mode text NOT NULL DEFAULT 'light' CHECK (mode IN ('light', 'dark')),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE portal_settings;
DROP TABLE portal_audit;
DROP TABLE portal_sessions;
