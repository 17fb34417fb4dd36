package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

const keyColumns = `id, app_id, key_hash, created_at, revoked_at`

// APIKey is one of an app's API keys; only its hash is stored.
type APIKey struct {
	ID        string       `db:"id" json:"id"`
	AppID     string       `db:"app_id" json:"appId"`
	CreatedAt time.Time    `db:"created_at" json:"createdAt"`
	RevokedAt sql.NullTime `db:"revoked_at" json:"-"`
	KeyHash   []byte       `db:"key_hash" json:"-"`
}

// AddAPIKey stores another key of an app.
func (r *Repo) AddAPIKey(ctx context.Context, appID, keyID string, keyHash []byte) (APIKey, error) {
	var k APIKey
	err := r.db.GetContext(ctx, &k, `INSERT INTO app_keys (id, app_id, key_hash) SELECT $1, id, $3 FROM apps WHERE id = $2
		RETURNING `+keyColumns, keyID, appID, keyHash)
	if err != nil {
		return APIKey{}, fmt.Errorf("add key to app %s: %w", appID, notFound(err))
	}
	return k, nil
}

// APIKeys lists an app's keys, revoked ones included, oldest first.
func (r *Repo) APIKeys(ctx context.Context, appID string) ([]APIKey, error) {
	var out []APIKey
	err := r.db.SelectContext(ctx, &out, `SELECT `+keyColumns+` FROM app_keys WHERE app_id = $1 ORDER BY created_at, id`, appID)
	if err != nil {
		return nil, fmt.Errorf("keys of app %s: %w", appID, err)
	}
	return out, nil
}

// RevokeAPIKey revokes one of an app's keys and tells every API process (NOTIFY on KeysChannel,
// in the same transaction) to forget it at once. Revoking a revoked key is not an error.
func (r *Repo) RevokeAPIKey(ctx context.Context, appID, keyID string) (APIKey, error) {
	var k APIKey
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &k, `UPDATE app_keys SET revoked_at = coalesce(revoked_at, now())
			WHERE id = $1 AND app_id = $2 RETURNING `+keyColumns, keyID, appID); err != nil {
			return notFound(err)
		}
		_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, encode($2::bytea, 'hex'))`, KeysChannel, k.KeyHash)
		return err
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke key %s: %w", keyID, err)
	}
	return k, nil
}

// KeysChannel is the PostgreSQL notification channel on which revoked key hashes (hex) are sent.
const KeysChannel = "hookd_api_keys"
