package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/hookd/hookd/db"
)

const (
	// retentionBatch is how many events one retention transaction deletes.
	retentionBatch = 500
	// retentionBudget bounds one run; the next scheduled run goes on where it stopped.
	retentionBudget = 10 * time.Minute
)

// DeleteExpired deletes, batch by batch, the events older than the configured retention with their
// deliveries and attempts, and operations that ended before it, and returns how many rows went.
func (a *Activities) DeleteExpired(ctx context.Context) (db.Expired, error) {
	var total db.Expired
	// Idempotency keys live 24 h whatever HOOKD_RETENTION says.
	keys, err := a.Repo.DeleteExpiredIdempotencyKeys(ctx)
	if err != nil {
		return total, err
	}
	if keys > 0 {
		a.Log.Info("retention deleted expired idempotency keys", "keys", keys)
	}
	if a.Config.Retention <= 0 {
		return total, nil
	}
	cutoff := time.Now().Add(-a.Config.Retention)
	stop := time.Now().Add(retentionBudget)
	for time.Now().Before(stop) {
		n, err := a.Repo.DeleteExpired(ctx, cutoff, retentionBatch)
		if err != nil {
			return total, err
		}
		total.Events += n.Events
		total.Deliveries += n.Deliveries
		total.Attempts += n.Attempts
		activity.RecordHeartbeat(ctx, total)
		if n.Events < retentionBatch {
			break
		}
	}
	ops, err := a.Repo.DeleteFinishedOperations(ctx, cutoff)
	if err != nil {
		return total, err
	}
	if total.Events > 0 || ops > 0 {
		a.Log.Info("retention deleted old rows", "operations", ops, "events", total.Events, "deliveries", total.Deliveries,
			"attempts", total.Attempts, "before", cutoff)
	}
	return total, nil
}
