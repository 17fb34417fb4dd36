// Package db holds hookd's PostgreSQL schema (embedded goose migrations) and its repository layer.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"github.com/hookd/hookd/keyring"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Errors the repository returns for conditions callers map to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrEventRemoved: a subscription to a registered event its publisher removed cannot be
	// enabled again.
	ErrEventRemoved = errors.New("the publisher removed the event this subscription is to")
)

// Open connects to PostgreSQL and checks the connection.
//
// Its sessions plan every statement for its parameters (plan_cache_mode force_custom_plan, unless
// the URL sets it): the hot path's statements are prepared (stmts.go), and PostgreSQL's generic
// plans for them, chosen after five runs, walked whole indexes for a wide fan-out (one event to
// 50,000 subscribers: 1,079 deliveries/s with generic plans, 2,266 with custom ones). Preparing
// still saves the parsing.
func Open(ctx context.Context, url string) (*sqlx.DB, error) {
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if cfg.Runtime == nil {
		cfg.Runtime = map[string]string{}
	}
	if _, set := cfg.Runtime["plan_cache_mode"]; !set {
		cfg.Runtime["plan_cache_mode"] = "force_custom_plan"
	}
	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	d := sqlx.NewDb(sql.OpenDB(conn), "postgres")
	d.SetMaxOpenConns(32)
	d.SetMaxIdleConns(32)
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return d, nil
}

// Migrate applies every pending migration.
func Migrate(ctx context.Context, d *sqlx.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, d.DB, sub)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Repo is the repository over one database.
type Repo struct {
	db *sqlx.DB
	// keys seal the secrets it writes (app and subscription secrets, callback keys) and open the
	// ones it reads; see secrets.go.
	keys *keyring.Keyring

	// hot runs the hot path's statements prepared (stmts.go).
	hot *stmts

	// Concurrent writes on the hot path share statements (batch.go).
	eventInserts *batcher[Event, insertedEvent]
	ensures      *batcher[ensureCall, []Ensured]
	records      *batcher[recordCall, []Stripped]
	eventReads   *batcher[string, Event]
	targetReads  *batcher[targetQuery, []Target]
}

// NewRepo wraps a connection pool. keys seal and open the stored secrets; with nil keys, reading
// or writing a sealed secret fails.
func NewRepo(d *sqlx.DB, keys *keyring.Keyring) *Repo {
	r := &Repo{db: d, keys: keys, hot: &stmts{db: d}}
	r.eventInserts = newBatcher(func(Event) int { return 1 }, r.insertEvents)
	r.ensures = newBatcher(func(c ensureCall) int { return len(c.ds) + 1 }, r.ensureDeliveries)
	r.records = newBatcher(func(c recordCall) int { return len(c.rows) + 1 }, r.recordAttempts)
	r.eventReads = newBatcher(func(string) int { return 1 }, r.loadEvents)
	// A target page's rows are unknown until read: weigh a call by a tenth of its limit.
	r.targetReads = newBatcher(func(q targetQuery) int { return q.limit/10 + 1 }, r.targets)
	return r
}

// Ping checks the database answers (readiness).
func (r *Repo) Ping(ctx context.Context) error { return r.db.PingContext(ctx) }

func isUniqueViolation(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "23505"
}

func notFound(err error) error {
	if errors.Is(err, errSQLNoRows) {
		return ErrNotFound
	}
	return err
}

// prefixed qualifies a column list with a table alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
