package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the driver

	"github.com/hookd/hookd/db"
)

// Database is a throwaway database of its own on the real PostgreSQL server.
type Database struct {
	URL   string
	Name  string
	DB    *sqlx.DB
	admin string
}

// AdminURL is the server to create test databases on: $HOOKD_TEST_DATABASE_URL or the local default.
func AdminURL() string {
	if u := os.Getenv("HOOKD_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates a fresh, migrated database so concurrent test runs never collide.
func NewDatabase(ctx context.Context) (*Database, error) {
	admin := AdminURL()
	b := make([]byte, 6)
	rand.Read(b)
	name := "hookd_test_" + hex.EncodeToString(b)
	a, err := sqlx.Open("postgres", admin)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if _, err := a.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create test database (is PostgreSQL up? `scripts/ensure-postgres.sh`): %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	d, err := db.Open(ctx, u.String())
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, d); err != nil {
		d.Close()
		return nil, err
	}
	return &Database{URL: u.String(), Name: name, DB: d, admin: admin}, nil
}

// Drop closes and removes the database.
func (d *Database) Drop(ctx context.Context) error {
	d.DB.Close()
	a, err := sqlx.Open("postgres", d.admin)
	if err != nil {
		return err
	}
	defer a.Close()
	_, err = a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.Name+" WITH (FORCE)")
	return err
}
