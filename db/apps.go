package db

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

const appColumns = `id, name, permissions, secret, contact_email, operations_url, created_at`

// CreateApp stores an app with its first API key (only the key's hash).
func (r *Repo) CreateApp(ctx context.Context, a App, keyID string, keyHash []byte) (App, error) {
	sealed, err := r.seal(colAppSecret, a.ID, a.Secret)
	if err != nil {
		return App{}, fmt.Errorf("create app: %w", err)
	}
	err = r.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &a, `INSERT INTO apps (id, name, permissions, secret, contact_email, operations_url)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+appColumns,
			a.ID, a.Name, a.Permissions, sealed, a.ContactEmail, a.OperationsURL); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO app_keys (id, app_id, key_hash) VALUES ($1, $2, $3)`, keyID, a.ID, keyHash)
		return err
	})
	if err == nil {
		err = r.openApps(&a)
	}
	if err != nil {
		return App{}, fmt.Errorf("create app: %w", err)
	}
	return a, nil
}

// AppByKeyHash finds the app that owns an API key that is not revoked.
func (r *Repo) AppByKeyHash(ctx context.Context, keyHash []byte) (App, error) {
	var a App
	err := r.db.GetContext(ctx, &a, `SELECT `+prefixed("a", appColumns)+` FROM apps a
		JOIN app_keys k ON k.app_id = a.id WHERE k.key_hash = $1 AND k.revoked_at IS NULL`, keyHash)
	if err == nil {
		err = r.openApps(&a)
	}
	if err != nil {
		return App{}, fmt.Errorf("app by key: %w", notFound(err))
	}
	return a, nil
}

// GetApp loads one app.
func (r *Repo) GetApp(ctx context.Context, id string) (App, error) {
	var a App
	if err := r.db.GetContext(ctx, &a, `SELECT `+appColumns+` FROM apps WHERE id = $1`, id); err != nil {
		return App{}, fmt.Errorf("get app %s: %w", id, notFound(err))
	}
	if err := r.openApps(&a); err != nil {
		return App{}, fmt.Errorf("get app %s: %w", id, err)
	}
	return a, nil
}

// SetOperationsURL sets where an app's operational webhooks go ("" stops them).
func (r *Repo) SetOperationsURL(ctx context.Context, id, url string) (App, error) {
	var a App
	err := r.db.GetContext(ctx, &a, `UPDATE apps SET operations_url = $2 WHERE id = $1 RETURNING `+appColumns, id, url)
	if err == nil {
		err = r.openApps(&a)
	}
	if err != nil {
		return App{}, fmt.Errorf("set operations url of %s: %w", id, notFound(err))
	}
	return a, nil
}

// ListApps returns apps in creation order after the cursor id, at most limit.
func (r *Repo) ListApps(ctx context.Context, after string, limit int) ([]App, error) {
	var out []App
	err := r.db.SelectContext(ctx, &out, `SELECT `+appColumns+` FROM apps
		WHERE ($1 = '' OR (created_at, id) > (SELECT created_at, id FROM apps WHERE id = $1))
		ORDER BY created_at, id LIMIT $2`, after, limit)
	for i := 0; err == nil && i < len(out); i++ {
		err = r.openApps(&out[i])
	}
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return out, nil
}
