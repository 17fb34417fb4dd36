package db

import (
	"context"
	"fmt"
)

const appColumns = `id, name, permissions, secret, contact_email, created_at`

// CreateApp stores an app with the hash of its API key.
func (r *Repo) CreateApp(ctx context.Context, a App, keyHash []byte) (App, error) {
	sealed, err := r.seal(colAppSecret, a.ID, a.Secret)
	if err != nil {
		return App{}, fmt.Errorf("create app: %w", err)
	}
	err = r.db.GetContext(ctx, &a, `INSERT INTO apps (id, name, permissions, secret, contact_email, api_key_hash)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+appColumns,
		a.ID, a.Name, a.Permissions, sealed, a.ContactEmail, keyHash)
	if err == nil {
		err = r.openApps(&a)
	}
	if err != nil {
		return App{}, fmt.Errorf("create app: %w", err)
	}
	return a, nil
}

// AppByKeyHash finds the app that owns an API key.
func (r *Repo) AppByKeyHash(ctx context.Context, keyHash []byte) (App, error) {
	var a App
	err := r.db.GetContext(ctx, &a, `SELECT `+appColumns+` FROM apps WHERE api_key_hash = $1`, keyHash)
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
