package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/hookd/hookd/keyring"
)

// Columns whose values are sealed. Each also names the additional authenticated data, with the
// row's id: a sealed value opens only in the row and column it was written to, so someone who can
// write to the database cannot move a known secret to another subscription.
const (
	colAppSecret      = "apps.secret"
	colSubSecret      = "subscriptions.secret"
	colSubPrevious    = "subscriptions.previous_secret"
	colSubCallbackKey = "subscriptions.callback_key"
)

func (r *Repo) seal(column, id, plain string) (string, error) {
	if r.keys == nil {
		return "", fmt.Errorf("seal %s of %s: no encryption key", column, id)
	}
	v, err := r.keys.Seal(plain, column+"/"+id)
	if err != nil {
		return "", fmt.Errorf("seal %s of %s: %w", column, id, err)
	}
	return v, nil
}

// open returns a stored value in plain text. A value without the sealed prefix was written before
// secrets were encrypted and is returned as it is, so old rows keep working until the next
// rotation re-encrypts them.
func (r *Repo) open(column, id, stored string) (string, error) {
	if !keyring.IsSealed(stored) {
		return stored, nil
	}
	if r.keys == nil {
		return "", fmt.Errorf("open %s of %s: no encryption key", column, id)
	}
	v, err := r.keys.Open(stored, column+"/"+id)
	if err != nil {
		return "", fmt.Errorf("open %s of %s (HOOKD_ENCRYPTION_KEY holds %v): %w", column, id, r.keys.IDs(), err)
	}
	return v, nil
}

func (r *Repo) sealNull(column, id string, v sql.NullString) (sql.NullString, error) {
	if !v.Valid {
		return v, nil
	}
	s, err := r.seal(column, id, v.String)
	return sql.NullString{String: s, Valid: err == nil}, err
}

func (r *Repo) openNull(column, id string, v sql.NullString) (sql.NullString, error) {
	if !v.Valid {
		return v, nil
	}
	s, err := r.open(column, id, v.String)
	return sql.NullString{String: s, Valid: err == nil}, err
}

// openApps opens the secrets of apps read from the database, in place.
func (r *Repo) openApps(apps ...*App) error {
	for _, a := range apps {
		var err error
		if a.Secret, err = r.open(colAppSecret, a.ID, a.Secret); err != nil {
			return err
		}
	}
	return nil
}

// sealSubscription returns s with its secret and callback key sealed, for writing. The previous
// secret is only ever written by RotateSecret.
func (r *Repo) sealSubscription(s Subscription) (Subscription, error) {
	var err error
	if s.Secret, err = r.seal(colSubSecret, s.ID, s.Secret); err != nil {
		return Subscription{}, err
	}
	if s.CallbackKey, err = r.sealNull(colSubCallbackKey, s.ID, s.CallbackKey); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// openSubscriptions opens the secrets of subscriptions read from the database, in place.
func (r *Repo) openSubscriptions(subs ...*Subscription) error {
	for _, s := range subs {
		var err error
		if s.Secret, err = r.open(colSubSecret, s.ID, s.Secret); err != nil {
			return err
		}
		if s.PreviousSecret, err = r.openNull(colSubPrevious, s.ID, s.PreviousSecret); err != nil {
			return err
		}
		if s.CallbackKey, err = r.openNull(colSubCallbackKey, s.ID, s.CallbackKey); err != nil {
			return err
		}
	}
	return nil
}

// Reencrypted counts the values of one column a rotation sealed under the current key.
type Reencrypted struct {
	Column    string // table.column
	Total     int    // values re-sealed
	FromPlain int    // of those, values stored before encryption
}

// Rotation is what ReencryptSecrets did.
type Rotation struct {
	Key       string        // the current key every value is now sealed with
	Columns   []Reencrypted // one per sealed column
	Remaining int           // values still not under the current key (written meanwhile by a process that has an older key first)
}

// ReencryptSecrets seals every stored secret that is not sealed under the current key (an older
// key, or plain text from before encryption) under the current key, batch rows per transaction.
// It is idempotent and runs beside live processes: rows are locked only for their batch, and rows
// another transaction holds are skipped and taken on a later pass.
func (r *Repo) ReencryptSecrets(ctx context.Context, batch int) (Rotation, error) {
	if r.keys == nil {
		return Rotation{}, errors.New("re-encrypt secrets: no encryption key")
	}
	rot := Rotation{Key: r.keys.Current()}
	apps := Reencrypted{Column: colAppSecret}
	subs := map[string]*Reencrypted{colSubSecret: {Column: colSubSecret}, colSubPrevious: {Column: colSubPrevious},
		colSubCallbackKey: {Column: colSubCallbackKey}}
	const passes = 5
	for pass := 1; ; pass++ {
		if err := r.reencryptApps(ctx, batch, &apps); err != nil {
			return Rotation{}, err
		}
		if err := r.reencryptSubscriptions(ctx, batch, subs); err != nil {
			return Rotation{}, err
		}
		remaining, err := r.notCurrent(ctx)
		if err != nil {
			return Rotation{}, err
		}
		rot.Remaining = remaining
		if remaining == 0 || pass == passes {
			break
		}
		// Rows skipped because another transaction held them: wait for it, then look again.
		select {
		case <-ctx.Done():
			return Rotation{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	rot.Columns = []Reencrypted{apps, *subs[colSubSecret], *subs[colSubPrevious], *subs[colSubCallbackKey]}
	return rot, nil
}

// resealed returns stored sealed under the current key, and whether it had to change.
func (r *Repo) resealed(column, id string, stored string, n *Reencrypted) (string, bool, error) {
	if r.keys.IsCurrent(stored) {
		return stored, false, nil
	}
	plain, err := r.open(column, id, stored)
	if err != nil {
		return "", false, err
	}
	sealed, err := r.seal(column, id, plain)
	if err != nil {
		return "", false, err
	}
	n.Total++
	if !keyring.IsSealed(stored) {
		n.FromPlain++
	}
	return sealed, true, nil
}

func (r *Repo) reencryptApps(ctx context.Context, batch int, n *Reencrypted) error {
	// Keyset on id, so each batch starts where the last one ended whatever the table's size.
	for after := ""; ; {
		var rows []struct {
			ID     string `db:"id"`
			Secret string `db:"secret"`
		}
		err := r.inTx(ctx, func(tx *sqlx.Tx) error {
			if err := tx.SelectContext(ctx, &rows, `SELECT id, secret FROM apps
				WHERE id > $1 AND NOT starts_with(secret, $2)
				ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`, after, r.keys.CurrentPrefix(), batch); err != nil {
				return err
			}
			var ids, secrets []string
			for _, row := range rows {
				v, changed, err := r.resealed(colAppSecret, row.ID, row.Secret, n)
				if err != nil {
					return err
				}
				if changed {
					ids, secrets = append(ids, row.ID), append(secrets, v)
				}
			}
			if len(ids) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, `UPDATE apps SET secret = v.secret
				FROM unnest($1::text[], $2::text[]) AS v(id, secret) WHERE apps.id = v.id`,
				pq.StringArray(ids), pq.StringArray(secrets))
			return err
		})
		if err != nil {
			return fmt.Errorf("re-encrypt %s after %q: %w", colAppSecret, after, err)
		}
		if len(rows) < batch {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

func (r *Repo) reencryptSubscriptions(ctx context.Context, batch int, n map[string]*Reencrypted) error {
	for after := ""; ; {
		var rows []struct {
			ID          string         `db:"id"`
			Secret      string         `db:"secret"`
			Previous    sql.NullString `db:"previous_secret"`
			CallbackKey sql.NullString `db:"callback_key"`
		}
		err := r.inTx(ctx, func(tx *sqlx.Tx) error {
			// A NULL column needs nothing: NOT starts_with(NULL, …) is NULL, which does not select.
			if err := tx.SelectContext(ctx, &rows, `SELECT id, secret, previous_secret, callback_key FROM subscriptions
				WHERE id > $1 AND (NOT starts_with(secret, $2) OR NOT starts_with(previous_secret, $2) OR NOT starts_with(callback_key, $2))
				ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`, after, r.keys.CurrentPrefix(), batch); err != nil {
				return err
			}
			var ids, secrets, previous, callbackKeys []sql.NullString
			for _, row := range rows {
				secret, c1, err := r.resealed(colSubSecret, row.ID, row.Secret, n[colSubSecret])
				if err != nil {
					return err
				}
				prev, c2, err := r.resealedNull(colSubPrevious, row.ID, row.Previous, n[colSubPrevious])
				if err != nil {
					return err
				}
				key, c3, err := r.resealedNull(colSubCallbackKey, row.ID, row.CallbackKey, n[colSubCallbackKey])
				if err != nil {
					return err
				}
				if c1 || c2 || c3 {
					ids = append(ids, sql.NullString{String: row.ID, Valid: true})
					secrets = append(secrets, sql.NullString{String: secret, Valid: true})
					previous, callbackKeys = append(previous, prev), append(callbackKeys, key)
				}
			}
			if len(ids) == 0 {
				return nil
			}
			_, err := tx.ExecContext(ctx, `UPDATE subscriptions s SET secret = v.secret, previous_secret = v.previous_secret,
				callback_key = v.callback_key
				FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS v(id, secret, previous_secret, callback_key)
				WHERE s.id = v.id`, pq.GenericArray{A: ids}, pq.GenericArray{A: secrets}, pq.GenericArray{A: previous},
				pq.GenericArray{A: callbackKeys})
			return err
		})
		if err != nil {
			return fmt.Errorf("re-encrypt subscriptions after %q: %w", after, err)
		}
		if len(rows) < batch {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

func (r *Repo) resealedNull(column, id string, v sql.NullString, n *Reencrypted) (sql.NullString, bool, error) {
	if !v.Valid {
		return v, false, nil
	}
	s, changed, err := r.resealed(column, id, v.String, n)
	return sql.NullString{String: s, Valid: true}, changed, err
}

// notCurrent counts the stored values not sealed under the current key.
func (r *Repo) notCurrent(ctx context.Context) (int, error) {
	var n int
	err := r.db.GetContext(ctx, &n, `SELECT
		(SELECT count(*) FROM apps WHERE NOT starts_with(secret, $1)) +
		(SELECT count(*) FILTER (WHERE NOT starts_with(secret, $1)) + count(*) FILTER (WHERE NOT starts_with(previous_secret, $1))
			+ count(*) FILTER (WHERE NOT starts_with(callback_key, $1)) FROM subscriptions)`, r.keys.CurrentPrefix())
	if err != nil {
		return 0, fmt.Errorf("count values to re-encrypt: %w", err)
	}
	return n, nil
}
