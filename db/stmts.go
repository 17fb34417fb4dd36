package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"
)

// stmts runs the hot path's queries as prepared statements. lib/pq otherwise sends each query
// unnamed, and PostgreSQL parses and plans it on every call: for the ledger's CTEs that costs more
// CPU than writing the rows. database/sql prepares a statement again on each connection it runs
// on, so a dropped connection is handled. (Behind a pooler in transaction mode, prepared
// statements need its support, e.g. PgBouncer's max_prepared_statements.)
type stmts struct {
	db *sqlx.DB
	mu sync.Mutex
	m  map[string]*sqlx.Stmt
}

func (s *stmts) get(ctx context.Context, query string) (*sqlx.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[query]; ok {
		return st, nil
	}
	st, err := s.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if s.m == nil {
		s.m = map[string]*sqlx.Stmt{}
	}
	s.m[query] = st
	return st, nil
}

func (s *stmts) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.get(ctx, query)
	if err != nil {
		return err
	}
	return st.SelectContext(ctx, dest, args...)
}

func (s *stmts) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.get(ctx, query)
	if err != nil {
		return err
	}
	return st.GetContext(ctx, dest, args...)
}

func (s *stmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}
