package db

import (
	"context"
	"database/sql"
	"errors"
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

// MaxActiveKeys is how many API keys that are not revoked an app may hold: enough to rotate keys
// and give each service its own, few enough that minting keys is no way to grow (the rate limit is
// the app's, whatever the number of its keys).
const MaxActiveKeys = 20

// ErrTooManyKeys: the app holds MaxActiveKeys active keys already.
var ErrTooManyKeys = errors.New("too many active API keys")

// AddAPIKey stores another key of an app, unless it holds MaxActiveKeys active ones already
// (ErrTooManyKeys). The app's row is locked while its keys are counted, so concurrent additions
// cannot pass the cap together.
func (r *Repo) AddAPIKey(ctx context.Context, appID, keyID string, keyHash []byte) (APIKey, error) {
	var k APIKey
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		var active int
		if err := tx.GetContext(ctx, &active, `SELECT 0 FROM apps WHERE id = $1 FOR NO KEY UPDATE`, appID); err != nil {
			return notFound(err)
		}
		if err := tx.GetContext(ctx, &active, `SELECT count(*) FROM app_keys WHERE app_id = $1 AND revoked_at IS NULL`, appID); err != nil {
			return err
		}
		if active >= MaxActiveKeys {
			return ErrTooManyKeys
		}
		return tx.GetContext(ctx, &k, `INSERT INTO app_keys (id, app_id, key_hash) VALUES ($1, $2, $3) RETURNING `+keyColumns,
			keyID, appID, keyHash)
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("add key to app %s: %w", appID, err)
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
