package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The subscriber portal (issue 29): sessions opened by single-use links, the audit log of what
// was done in them, an app's portal settings, and the reads only the portal makes.

// ErrTooManySessions: an app has MaxPortalSessions sessions that are open or may still be opened.
var ErrTooManySessions = errors.New("too many portal sessions")

// PortalAuditDays is how long the portal's audit log keeps an entry.
const PortalAuditDays = 90

// MaxPortalSessions bounds an app's live (unexpired, unrevoked) portal sessions.
const MaxPortalSessions = 1000

// PortalSession is one portal session. Its link token and cookie are stored only as hashes.
type PortalSession struct {
	ID       string `db:"id" json:"id"`
	AppID    string `db:"app_id" json:"appId"`
	ReadOnly bool   `db:"read_only" json:"readOnly"`
	// SubscriptionIDs narrows the session to these subscriptions (NULL: all of the app's).
	SubscriptionIDs pq.StringArray `db:"subscription_ids" json:"subscriptionIds"`
	LifetimeS       int            `db:"lifetime_s" json:"lifetimeSeconds"`
	TokenExpiresAt  time.Time      `db:"token_expires_at" json:"-"`
	ExpiresAt       time.Time      `db:"expires_at" json:"expiresAt"`
	CreatedBy       string         `db:"created_by" json:"createdBy"`
	CreatedAt       time.Time      `db:"created_at" json:"createdAt"`
	OpenedAt        sql.NullTime   `db:"opened_at" json:"-"`
	RevokedAt       sql.NullTime   `db:"revoked_at" json:"-"`
}

// Narrowed reports whether the session sees only some of its app's subscriptions.
func (s PortalSession) Narrowed() bool { return s.SubscriptionIDs != nil }

// Allows reports whether the session may see a subscription (by id; "" is a delivery with no
// subscription: a callback or an operational webhook, which a narrowed session does not see).
func (s PortalSession) Allows(subscriptionID string) bool {
	if !s.Narrowed() {
		return true
	}
	for _, id := range s.SubscriptionIDs {
		if id == subscriptionID && id != "" {
			return true
		}
	}
	return false
}

const portalSessionColumns = `id, app_id, read_only, subscription_ids, lifetime_s, token_expires_at, expires_at,
	created_by, created_at, opened_at, revoked_at`

// CreatePortalSession stores a session that its link (whose token hashes to tokenHash) opens
// until s.TokenExpiresAt. It also forgets this app's sessions that ended more than 30 days ago,
// and refuses (ErrTooManySessions) past MaxPortalSessions live ones.
func (r *Repo) CreatePortalSession(ctx context.Context, s PortalSession, tokenHash []byte) (PortalSession, error) {
	var out PortalSession
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		// Serialise the count and the insert per app.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('portal_sessions:' || $1))`, s.AppID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM portal_sessions WHERE id IN (SELECT id FROM portal_sessions
			WHERE app_id = $1 AND coalesce(revoked_at, expires_at) < now() - interval '30 days' LIMIT 1000)`, s.AppID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM portal_audit WHERE id IN (SELECT id FROM portal_audit
			WHERE app_id = $1 AND at < now() - $2 * interval '1 day' ORDER BY id LIMIT 1000)`, s.AppID, PortalAuditDays); err != nil {
			return err
		}
		var live int
		if err := tx.GetContext(ctx, &live, `SELECT count(*) FROM (SELECT 1 FROM portal_sessions
			WHERE app_id = $1 AND revoked_at IS NULL AND expires_at > now() LIMIT $2) l`, s.AppID, MaxPortalSessions); err != nil {
			return err
		}
		if live >= MaxPortalSessions {
			return ErrTooManySessions
		}
		return tx.GetContext(ctx, &out, `INSERT INTO portal_sessions (id, app_id, token_hash, token_expires_at, read_only,
				subscription_ids, lifetime_s, expires_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $4, $8) RETURNING `+portalSessionColumns,
			s.ID, s.AppID, tokenHash, s.TokenExpiresAt, s.ReadOnly, s.SubscriptionIDs, s.LifetimeS, s.CreatedBy)
	})
	if err != nil {
		return PortalSession{}, fmt.Errorf("create portal session: %w", err)
	}
	return out, nil
}

// OpenPortalSession exchanges a link's token (by hash) for a session cookie (by hash), once: the
// token is forgotten, and the session lives LifetimeS from now. ErrNotFound when no unexpired,
// unrevoked, unopened session has that token.
func (r *Repo) OpenPortalSession(ctx context.Context, tokenHash, cookieHash []byte) (PortalSession, error) {
	var s PortalSession
	err := r.db.GetContext(ctx, &s, `UPDATE portal_sessions SET token_hash = NULL, cookie_hash = $2, opened_at = now(),
			expires_at = now() + lifetime_s * interval '1 second'
		WHERE token_hash = $1 AND token_expires_at > now() AND revoked_at IS NULL
		RETURNING `+portalSessionColumns, tokenHash, cookieHash)
	if err != nil {
		return PortalSession{}, fmt.Errorf("open portal session: %w", notFound(err))
	}
	return s, nil
}

// PortalSessionByCookie finds the live session of a cookie (by hash) and its app. It is asked on
// every portal request, so a revocation takes effect at once in every API process.
func (r *Repo) PortalSessionByCookie(ctx context.Context, cookieHash []byte) (PortalSession, App, error) {
	var s PortalSession
	err := r.db.GetContext(ctx, &s, `SELECT `+portalSessionColumns+` FROM portal_sessions
		WHERE cookie_hash = $1 AND revoked_at IS NULL AND expires_at > now()`, cookieHash)
	if err != nil {
		return PortalSession{}, App{}, fmt.Errorf("portal session: %w", notFound(err))
	}
	app, err := r.GetApp(ctx, s.AppID)
	if err != nil {
		return PortalSession{}, App{}, fmt.Errorf("portal session: %w", err)
	}
	return s, app, nil
}

// PortalSessions lists an app's sessions, newest first, after (createdAt, id).
func (r *Repo) PortalSessions(ctx context.Context, appID string, afterCreated time.Time, afterID string, limit int) ([]PortalSession, error) {
	if afterCreated.IsZero() {
		afterCreated = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var out []PortalSession
	err := r.db.SelectContext(ctx, &out, `SELECT `+portalSessionColumns+` FROM portal_sessions
		WHERE app_id = $1 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4`,
		appID, afterCreated, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("portal sessions of %s: %w", appID, err)
	}
	return out, nil
}

// RevokePortalSessions ends an app's sessions: the one with id, or every live one when id is "".
// It returns how many it ended; ErrNotFound when id names none of the app's sessions.
func (r *Repo) RevokePortalSessions(ctx context.Context, appID, id string) (int64, error) {
	res, err := r.db.ExecContext(ctx, `UPDATE portal_sessions SET revoked_at = now(), token_hash = NULL
		WHERE app_id = $1 AND ($2 = '' OR id = $2) AND revoked_at IS NULL`, appID, id)
	if err != nil {
		return 0, fmt.Errorf("revoke portal sessions of %s: %w", appID, err)
	}
	n, _ := res.RowsAffected()
	if n == 0 && id != "" {
		var exists bool
		if err := r.db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM portal_sessions WHERE app_id = $1 AND id = $2)`, appID, id); err != nil {
			return 0, fmt.Errorf("revoke portal session %s: %w", id, err)
		}
		if !exists {
			return 0, fmt.Errorf("revoke portal session %s: %w", id, ErrNotFound)
		}
	}
	return n, nil
}

// PortalAudit is one mutating action taken in a portal session.
type PortalAudit struct {
	ID        int64     `db:"id" json:"id"`
	AppID     string    `db:"app_id" json:"appId"`
	SessionID string    `db:"session_id" json:"sessionId"`
	Action    string    `db:"action" json:"action"`
	Target    string    `db:"target" json:"target"`
	Detail    string    `db:"detail" json:"detail,omitempty"`
	At        time.Time `db:"at" json:"at"`
}

// AddPortalAudit records an action.
func (r *Repo) AddPortalAudit(ctx context.Context, a PortalAudit) error {
	_, err := r.db.ExecContext(ctx, `INSERT INTO portal_audit (app_id, session_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)`,
		a.AppID, a.SessionID, truncateRunes(a.Action, 100), truncateRunes(a.Target, 300), truncateRunes(a.Detail, 1000))
	if err != nil {
		return fmt.Errorf("portal audit: %w", err)
	}
	return nil
}

// PortalAuditLog lists an app's audit entries, newest first, with ids below before (0: from the
// newest).
func (r *Repo) PortalAuditLog(ctx context.Context, appID string, before int64, limit int) ([]PortalAudit, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	var out []PortalAudit
	err := r.db.SelectContext(ctx, &out, `SELECT id, app_id, session_id, action, target, detail, at FROM portal_audit
		WHERE app_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, appID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("portal audit of %s: %w", appID, err)
	}
	return out, nil
}

// PortalSettings is how an app's portal looks and where it may be framed.
type PortalSettings struct {
	AppID          string         `db:"app_id" json:"-"`
	FrameAncestors pq.StringArray `db:"frame_ancestors" json:"frameAncestors"`
	AccentColor    string         `db:"accent_color" json:"accentColor"`
	LogoURL        string         `db:"logo_url" json:"logoUrl"`
	Mode           string         `db:"mode" json:"mode"`
	UpdatedAt      time.Time      `db:"updated_at" json:"-"`
}

// GetPortalSettings returns an app's settings (the defaults when it has none).
func (r *Repo) GetPortalSettings(ctx context.Context, appID string) (PortalSettings, error) {
	var s PortalSettings
	err := r.db.GetContext(ctx, &s, `SELECT app_id, frame_ancestors, accent_color, logo_url, mode, updated_at
		FROM portal_settings WHERE app_id = $1`, appID)
	if errors.Is(err, sql.ErrNoRows) {
		return PortalSettings{AppID: appID, FrameAncestors: pq.StringArray{}, Mode: "light"}, nil
	}
	if err != nil {
		return PortalSettings{}, fmt.Errorf("portal settings of %s: %w", appID, err)
	}
	return s, nil
}

// SetPortalSettings stores an app's settings.
func (r *Repo) SetPortalSettings(ctx context.Context, s PortalSettings) (PortalSettings, error) {
	if s.FrameAncestors == nil {
		s.FrameAncestors = pq.StringArray{}
	}
	var out PortalSettings
	err := r.db.GetContext(ctx, &out, `INSERT INTO portal_settings (app_id, frame_ancestors, accent_color, logo_url, mode)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (app_id) DO UPDATE SET frame_ancestors = $2, accent_color = $3, logo_url = $4, mode = $5, updated_at = now()
		RETURNING app_id, frame_ancestors, accent_color, logo_url, mode, updated_at`,
		s.AppID, s.FrameAncestors, s.AccentColor, s.LogoURL, s.Mode)
	if err != nil {
		return PortalSettings{}, fmt.Errorf("set portal settings of %s: %w", s.AppID, err)
	}
	return out, nil
}

// SubscriptionHealth is how a subscription did over a window.
type SubscriptionHealth struct {
	SubscriptionID string          `db:"subscription_id"`
	Attempts       int             `db:"attempts"`
	Succeeded      int             `db:"succeeded"`
	P50MS          sql.NullFloat64 `db:"p50_ms"`
	LastFailureAt  sql.NullTime    `db:"last_failure_at"`
	LastFailure    sql.NullString  `db:"last_failure"`
}

// SubscriptionsHealth measures the attempts made to each subscription since since: how many,
// how many succeeded (2xx), their median duration, and the latest failed one and why. Only each
// subscription's newest 2,000 attempts (by delivery) are looked at: the endpoints page reads
// this every 10 s while open, and a busy endpoint must not make that a scan of its whole day.
func (r *Repo) SubscriptionsHealth(ctx context.Context, appID string, ids []string, since time.Time) (map[string]SubscriptionHealth, error) {
	var rows []SubscriptionHealth
	err := r.db.SelectContext(ctx, &rows, `SELECT s.id AS subscription_id, count(a.*) AS attempts,
			count(*) FILTER (WHERE a.response_status BETWEEN 200 AND 299) AS succeeded,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50_ms,
			max(a.started_at) FILTER (WHERE a.state <> 'sending' AND NOT coalesce(a.response_status BETWEEN 200 AND 299, false)) AS last_failure_at,
			(array_agg(CASE WHEN a.response_status IS NOT NULL THEN 'HTTP ' || a.response_status ELSE a.error END ORDER BY a.started_at DESC)
				FILTER (WHERE a.state <> 'sending' AND NOT coalesce(a.response_status BETWEEN 200 AND 299, false)))[1] AS last_failure
		FROM unnest($2::text[]) AS s(id)
		LEFT JOIN LATERAL (
			SELECT at.response_status, at.duration_ms, at.started_at, at.state, at.error
			FROM deliveries d JOIN delivery_attempts at ON at.delivery_id = d.id
			WHERE d.subscription_id = s.id AND d.app_id = $1 AND d.created_at >= $3 AND at.started_at >= $3
			ORDER BY d.created_at DESC LIMIT 2000
		) a ON true
		GROUP BY s.id`, appID, pq.StringArray(ids), since)
	if err != nil {
		return nil, fmt.Errorf("subscription health: %w", err)
	}
	out := make(map[string]SubscriptionHealth, len(rows))
	for _, h := range rows {
		out[h.SubscriptionID] = h
	}
	return out, nil
}

// LogFilter narrows the portal's message log. Empty fields match everything; SubscriptionIDs
// non-nil limits the log to those subscriptions (a narrowed session).
type LogFilter struct {
	AppID           string
	Status          string
	EventType       string
	SubscriptionID  string
	SubscriptionIDs []string
	// Kind and Topic narrow to events of that kind and topic (operational webhooks).
	Kind, Topic  string
	Since, Until time.Time
	// Before pages: deliveries created before (BeforeCreated, BeforeID).
	BeforeCreated time.Time
	BeforeID      string
	Limit         int
}

// LogEntry is a delivery with its event's type.
type LogEntry struct {
	Delivery
	EventType string `db:"event_type"`
}

// DeliveryLog lists an app's deliveries newest first.
func (r *Repo) DeliveryLog(ctx context.Context, f LogFilter) ([]LogEntry, error) {
	if f.BeforeCreated.IsZero() {
		f.BeforeCreated = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if f.Until.IsZero() {
		f.Until = f.BeforeCreated
	}
	var out []LogEntry
	err := r.db.SelectContext(ctx, &out, `SELECT `+prefixed("d", deliveryColumns)+`, e.type AS event_type
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.app_id = $1 AND ($2 = '' OR d.status = $2) AND ($3 = '' OR e.type = $3)
		  AND ($4 = '' OR d.subscription_id = $4) AND ($5::text[] IS NULL OR d.subscription_id = ANY($5))
		  AND d.created_at >= $6 AND d.created_at < $7 AND (d.created_at, d.id) < ($8, $9)
		  AND ($11 = '' OR e.kind = $11) AND ($12 = '' OR e.topic = $12)
		ORDER BY d.created_at DESC, d.id DESC LIMIT $10`,
		f.AppID, f.Status, f.EventType, f.SubscriptionID, nullArray(f.SubscriptionIDs), f.Since, f.Until,
		f.BeforeCreated, f.BeforeID, f.Limit, f.Kind, f.Topic)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	return out, nil
}

func nullArray(ids []string) any {
	if ids == nil {
		return nil
	}
	return pq.StringArray(ids)
}
