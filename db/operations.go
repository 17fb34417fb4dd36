package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hookd/hookd/delivery"
)

// Operation kinds and states.
const (
	OperationRecover = "recover"
	// OperationReplay keeps a whole-event replay's callback URL (ReplayParams) out of the
	// workflow's history until the callback is stored.
	OperationReplay = "replay"

	OperationRunning   = "running"
	OperationCompleted = delivery.OperationCompleted
	OperationCancelled = delivery.OperationCancelled
)

// RecoverWindow is what a recover replays: an app's failed deliveries created in [Since, Until),
// optionally of one subscription and one event type.
type RecoverWindow struct {
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	SubscriptionID string    `json:"subscriptionId,omitempty"`
	EventType      string    `json:"eventType,omitempty"`
}

// ReplayParams are a replay operation's parameters.
type ReplayParams struct {
	CallbackURL string `json:"callbackUrl"`
}

// Operation is a long-running job an app started.
type Operation struct {
	ID         string       `db:"id"`
	AppID      string       `db:"app_id"`
	Kind       string       `db:"kind"`
	Params     []byte       `db:"params"`
	Status     string       `db:"status"`
	WorkflowID string       `db:"workflow_id"`
	CreatedAt  time.Time    `db:"created_at"`
	UpdatedAt  time.Time    `db:"updated_at"`
	FinishedAt sql.NullTime `db:"finished_at"`
}

const operationColumns = `id, app_id, kind, params, status, workflow_id, created_at, updated_at, finished_at`

// CreateOperation stores an operation unless its id exists; created reports which, and the row
// is the stored one either way.
func (r *Repo) CreateOperation(ctx context.Context, op Operation) (stored Operation, created bool, err error) {
	err = r.db.GetContext(ctx, &stored, `INSERT INTO operations (id, app_id, kind, params, workflow_id)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING `+operationColumns,
		op.ID, op.AppID, op.Kind, op.Params, op.WorkflowID)
	if err == nil {
		return stored, true, nil
	}
	if err = notFound(err); !errors.Is(err, ErrNotFound) {
		return Operation{}, false, fmt.Errorf("create operation %s: %w", op.ID, err)
	}
	stored, err = r.GetOperation(ctx, OwnedBy(op.AppID), op.ID)
	return stored, false, err
}

// GetOperation loads an operation within scope.
func (r *Repo) GetOperation(ctx context.Context, scope Scope, id string) (Operation, error) {
	var op Operation
	err := r.db.GetContext(ctx, &op, `SELECT `+operationColumns+` FROM operations WHERE id = $1 AND ($2 OR app_id = $3)`,
		id, scope.any, scope.app)
	if err != nil {
		return Operation{}, fmt.Errorf("get operation %s: %w", id, notFound(err))
	}
	return op, nil
}

// FinishOperation records how an operation ended (once: a later call changes nothing).
func (r *Repo) FinishOperation(ctx context.Context, id, status string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE operations SET status = $2, finished_at = now(), updated_at = now()
		WHERE id = $1 AND finished_at IS NULL`, id, status)
	if err != nil {
		return fmt.Errorf("finish operation %s: %w", id, err)
	}
	return nil
}

// Window decodes a recover's parameters.
func (op Operation) Window() (RecoverWindow, error) {
	var w RecoverWindow
	if err := json.Unmarshal(op.Params, &w); err != nil {
		return RecoverWindow{}, fmt.Errorf("operation %s parameters: %w", op.ID, err)
	}
	return w, nil
}

// ClaimForRecovery marks up to limit failed deliveries of the window for recover operation op
// and returns them: the latest series to each target only (one a replay superseded is not
// failed any more), never one another recover claimed. Deliveries op claimed before but has not
// replayed yet (a retried activity) come back first.
//
// A failure is recovered once, by all recovers together: a target of an event (a subscription,
// or a callback URL) one of whose deliveries another recover claimed is left alone, so the
// replay a recover made, and any replay of that replay, is never recovered again (while the
// receiver is down, each round would POST, e-mail and raise delivery.failed once more). Nor does
// a recover claim a delivery created after the operation: its window cannot reach its own
// replays, whatever its until says.
//
// Rows locked by another writer are waited for, not skipped: a failure is locked briefly right
// after it happens (its e-mail, its delivery.failed webhook), and a page that skipped it would
// end the recover without it. Two recovers of overlapping windows wait for each other's claims
// and then see them (the row is checked again once its lock is released).
func (r *Repo) ClaimForRecovery(ctx context.Context, op, appID string, w RecoverWindow, limit int) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `UPDATE deliveries SET recovered_by = $1 WHERE id IN (
			SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id
			WHERE d.app_id = $2 AND d.status = 'failed' AND d.created_at >= $3 AND d.created_at < $4
			  AND ($5 = '' OR d.subscription_id = $5) AND ($6 = '' OR e.type = $6)
			  AND (d.recovered_by IS NULL OR d.recovered_by = $1)
			  AND d.created_at < (SELECT o.created_at FROM operations o WHERE o.id = $1)
			  AND NOT EXISTS (SELECT 1 FROM deliveries n WHERE n.event_id = d.event_id
				AND coalesce(n.subscription_id, n.url) = coalesce(d.subscription_id, d.url) AND n.replay > d.replay)
			  AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.event_id = d.event_id
				AND coalesce(p.subscription_id, p.url) = coalesce(d.subscription_id, d.url)
				AND p.recovered_by IS NOT NULL AND p.recovered_by <> $1)
			ORDER BY d.created_at, d.id LIMIT $7
			FOR UPDATE OF d)
		RETURNING `+deliveryColumns, op, appID, w.Since, w.Until, w.SubscriptionID, w.EventType, limit)
	if err != nil {
		return nil, fmt.Errorf("claim failed deliveries for %s: %w", op, err)
	}
	return out, nil
}

// DeleteFinishedOperations deletes operations that ended before cutoff.
func (r *Repo) DeleteFinishedOperations(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM operations WHERE finished_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("delete operations before %s: %w", cutoff.Format(time.RFC3339), err)
	}
	return res.RowsAffected()
}
