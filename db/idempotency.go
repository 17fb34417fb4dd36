package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// colIdempotentResponse is the sealed column of stored answers.
const colIdempotentResponse = "idempotency_keys.response"

// IdempotencyTTL is how long an Idempotency-Key's first answer is kept.
const IdempotencyTTL = 24 * time.Hour

// idempotencyStale is when a first request that never finished (its process died) is taken over
// by the next one with its key: longer than any request may run.
const idempotencyStale = 2 * time.Minute

// StoredResponse is the first answer to a request with an Idempotency-Key.
type StoredResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// IdempotencyClaim is what claiming a key found.
type IdempotencyClaim struct {
	Claimed    bool            // this request runs: the key was new, expired, or abandoned
	Mismatch   bool            // the key was used with another request
	InProgress bool            // the first request with the key is still running
	Response   *StoredResponse // the first answer, to send again
}

// ClaimIdempotencyKey claims key for owner's request with fingerprint, or reports what the
// first request with it did.
func (r *Repo) ClaimIdempotencyKey(ctx context.Context, owner, key string, fingerprint []byte) (IdempotencyClaim, error) {
	wrap := func(err error) error { return fmt.Errorf("idempotency key %q: %w", key, err) }
	// A row past its time, or a first request that died before answering, no longer counts.
	if _, err := r.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2
		AND (created_at < now() - make_interval(secs => $3) OR (status IS NULL AND created_at < now() - make_interval(secs => $4)))`,
		owner, key, IdempotencyTTL.Seconds(), idempotencyStale.Seconds()); err != nil {
		return IdempotencyClaim{}, wrap(err)
	}
	res, err := r.db.ExecContext(ctx, `INSERT INTO idempotency_keys (owner, key, fingerprint) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, owner, key, fingerprint)
	if err != nil {
		return IdempotencyClaim{}, wrap(err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return IdempotencyClaim{Claimed: true}, nil
	}
	var row struct {
		Fingerprint []byte         `db:"fingerprint"`
		Status      sql.NullInt32  `db:"status"`
		Response    sql.NullString `db:"response"`
	}
	err = r.db.GetContext(ctx, &row, `SELECT fingerprint, status, response FROM idempotency_keys WHERE owner = $1 AND key = $2`, owner, key)
	if errors.Is(err, sql.ErrNoRows) {
		return r.ClaimIdempotencyKey(ctx, owner, key, fingerprint) // deleted meanwhile: try again
	}
	if err != nil {
		return IdempotencyClaim{}, wrap(err)
	}
	switch {
	case !bytes.Equal(row.Fingerprint, fingerprint):
		return IdempotencyClaim{Mismatch: true}, nil
	case !row.Status.Valid:
		return IdempotencyClaim{InProgress: true}, nil
	}
	plain, err := r.open(colIdempotentResponse, owner+"/"+key, row.Response.String)
	if err != nil {
		return IdempotencyClaim{}, wrap(err)
	}
	var sr StoredResponse
	if err := json.Unmarshal([]byte(plain), &sr); err != nil {
		return IdempotencyClaim{}, wrap(err)
	}
	return IdempotencyClaim{Response: &sr}, nil
}

// CompleteIdempotencyKey stores the first answer to a claimed key, sealed.
func (r *Repo) CompleteIdempotencyKey(ctx context.Context, owner, key string, resp StoredResponse) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("idempotency key %q: %w", key, err)
	}
	sealed, err := r.seal(colIdempotentResponse, owner+"/"+key, string(b))
	if err != nil {
		return err
	}
	if _, err := r.db.ExecContext(ctx, `UPDATE idempotency_keys SET status = $3, response = $4 WHERE owner = $1 AND key = $2`,
		owner, key, resp.Status, sealed); err != nil {
		return fmt.Errorf("idempotency key %q: %w", key, err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a claimed key whose request did not complete (a 5xx): the client
// may retry it with the same key.
func (r *Repo) ReleaseIdempotencyKey(ctx context.Context, owner, key string) error {
	if _, err := r.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND status IS NULL`, owner, key); err != nil {
		return fmt.Errorf("idempotency key %q: %w", key, err)
	}
	return nil
}

// DeleteExpiredIdempotencyKeys deletes the answers kept past IdempotencyTTL.
func (r *Repo) DeleteExpiredIdempotencyKeys(ctx context.Context) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`, IdempotencyTTL.Seconds())
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return res.RowsAffected()
}
