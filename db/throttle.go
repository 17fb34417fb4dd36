package db

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Slot is the outcome of asking to send to a throttled subscription.
type Slot struct {
	// Granted: send at At (now or later), then release Lease (if any).
	Granted bool
	At      time.Time
	Lease   string
	// Wait, when not granted, is how long to wait before asking again.
	Wait time.Duration
	// at and next are, on the database's clock, the slot granted and the rate's next free slot
	// this grant set (zero without a rate limit): CancelSlot gives the slot back while no later
	// grant followed.
	at, next time.Time
}

// leaseWaitStep is how long a send waits before asking again while maxInFlight sends are in flight.
const leaseWaitStep = 250 * time.Millisecond

// AcquireSlot asks to send to a throttled subscription: not while a 429 pauses it, not beyond
// maxInFlight sends at once, and at most rateLimit per second, spaced evenly (GCRA, a burst of
// one). It reserves the next rate slot if it is at most reserveWithin away (0: however far;
// slots are served in the order they were reserved) with a lease that expires leaseTTL after it;
// otherwise, or while paused or full, it reserves nothing and Wait says how long until the next
// slot would be. The throttle row is locked for the decision, so the limits hold across processes.
func (r *Repo) AcquireSlot(ctx context.Context, sub Subscription, reserveWithin, leaseTTL time.Duration) (Slot, error) {
	var slot Slot
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO throttles (subscription_id) VALUES ($1) ON CONFLICT DO NOTHING`, sub.ID); err != nil {
			return err
		}
		// The lock on the throttle row orders every decision about this subscription. What it
		// decides on is read after the lock is held (a statement sees the rows committed when it
		// starts) and by the clock (now() is when the transaction began, before the wait).
		var tat time.Time
		if err := tx.GetContext(ctx, &tat, `SELECT tat FROM throttles WHERE subscription_id = $1 FOR UPDATE`, sub.ID); err != nil {
			return err
		}
		var st struct {
			Now         time.Time    `db:"now"`
			PausedUntil sql.NullTime `db:"paused_until"`
			InFlight    int          `db:"in_flight"`
		}
		if err := tx.GetContext(ctx, &st, `SELECT clock_timestamp() AS now, s.paused_until,
				(SELECT count(*) FROM throttle_leases l WHERE l.subscription_id = s.id AND l.expires_at > clock_timestamp()) AS in_flight
			FROM subscriptions s WHERE s.id = $1`, sub.ID); err != nil {
			return err
		}
		if st.PausedUntil.Valid && st.PausedUntil.Time.After(st.Now) {
			slot.Wait = st.PausedUntil.Time.Sub(st.Now)
			return nil
		}
		if sub.MaxInFlight.Valid && st.InFlight >= int(sub.MaxInFlight.Int32) {
			slot.Wait = leaseWaitStep
			return nil
		}
		at := st.Now
		if sub.RateLimit.Valid && sub.RateLimit.Float64 > 0 {
			if tat.After(at) {
				at = tat
			}
			if reserveWithin > 0 && at.Sub(st.Now) > reserveWithin {
				slot.Wait = at.Sub(st.Now)
				return nil
			}
			next := at.Add(time.Duration(float64(time.Second) / sub.RateLimit.Float64)).Round(time.Microsecond)
			if _, err := tx.ExecContext(ctx, `UPDATE throttles SET tat = $2 WHERE subscription_id = $1`, sub.ID, next); err != nil {
				return err
			}
			slot.at, slot.next = at, next
		}
		if sub.MaxInFlight.Valid {
			slot.Lease = newLeaseID()
			if _, err := tx.ExecContext(ctx, `DELETE FROM throttle_leases WHERE subscription_id = $1 AND expires_at <= clock_timestamp()`, sub.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO throttle_leases (subscription_id, lease_id, expires_at) VALUES ($1, $2, $3)`,
				sub.ID, slot.Lease, at.Add(leaseTTL)); err != nil {
				return err
			}
		}
		// At is on this process's clock, the wait measured on the database's.
		slot.Granted, slot.At = true, time.Now().Add(at.Sub(st.Now))
		return nil
	})
	if err != nil {
		return Slot{}, fmt.Errorf("throttle %s: %w", sub.ID, err)
	}
	return slot, nil
}

// ReleaseSlot ends a send's lease.
func (r *Repo) ReleaseSlot(ctx context.Context, subscriptionID, lease string) error {
	if lease == "" {
		return nil
	}
	if _, err := r.db.ExecContext(ctx, `DELETE FROM throttle_leases WHERE subscription_id = $1 AND lease_id = $2`, subscriptionID, lease); err != nil {
		return fmt.Errorf("release %s: %w", subscriptionID, err)
	}
	return nil
}

// CancelSlot gives back a granted slot whose send will not be made (another run made it): its
// lease ends, and its rate slot is free again unless a later grant came after it (the rate's
// state is the next free time only; a slot in the middle cannot be handed back, and is lost).
func (r *Repo) CancelSlot(ctx context.Context, subscriptionID string, s Slot) error {
	if !s.Granted {
		return nil
	}
	if err := r.ReleaseSlot(ctx, subscriptionID, s.Lease); err != nil {
		return err
	}
	if s.next.IsZero() {
		return nil
	}
	if _, err := r.db.ExecContext(ctx, `UPDATE throttles SET tat = $2 WHERE subscription_id = $1 AND tat = $3`,
		subscriptionID, s.at, s.next); err != nil {
		return fmt.Errorf("give back a slot of %s: %w", subscriptionID, err)
	}
	return nil
}

// PauseEndpoint slows a subscription down after a 429: no send to it for retryAfter, or, when the
// receiver gave none, for a pause that doubles with each 429 in a row (1 s to 1 min); never for
// longer than maxPause, so a receiver cannot park an endpoint (as its retry policy caps a wait).
func (r *Repo) PauseEndpoint(ctx context.Context, subscriptionID string, retryAfter, maxPause time.Duration) error {
	_, err := r.db.ExecContext(ctx, `UPDATE subscriptions SET pause_ms = least(greatest(pause_ms * 2, 1000), 60000),
			paused_until = greatest(coalesce(paused_until, now()), now() + make_interval(secs =>
				least($3, greatest($2, least(greatest(pause_ms * 2, 1000), 60000) / 1000.0))))
		WHERE id = $1`, subscriptionID, retryAfter.Seconds(), maxPause.Seconds())
	if err != nil {
		return fmt.Errorf("pause %s: %w", subscriptionID, err)
	}
	return nil
}

// ResumeEndpoint forgets a subscription's 429 streak after a success.
func (r *Repo) ResumeEndpoint(ctx context.Context, subscriptionID string) error {
	if _, err := r.db.ExecContext(ctx, `UPDATE subscriptions SET pause_ms = 0 WHERE id = $1 AND pause_ms > 0`, subscriptionID); err != nil {
		return fmt.Errorf("resume %s: %w", subscriptionID, err)
	}
	return nil
}

func newLeaseID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
