package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/webhook"
)

// ErrTypeThrottled is the retryable failure an Attempt of a workflow that cannot wait out a
// Throttled result (one started before throttling existed) gets instead.
const ErrTypeThrottled = "DeliveryThrottled"

// slotLead is how long before a reserved slot a waiting delivery's next try is scheduled.
const slotLead = 2 * time.Second

// fanOutThrottleWait is the longest a fan-out page holds a throttled first attempt for its slot;
// a later slot is reserved and handed to the delivery's own workflow, which waits for it.
const fanOutThrottleWait = time.Second

// gate is the outcome of asking to send to a subscription now.
type gate struct {
	send  bool                  // send (after sleeping until at), then release lease
	at    time.Time             // when to send
	lease string                //
	wait  time.Duration         // when !send: how long to wait before the next try
	res   *delivery.Reservation // when !send: the slot reserved meanwhile, if any
	slot  db.Slot               // the slot granted by this asking, if any (see unreserve)
}

// gateFor asks whether a send to sub may happen within within, honouring a reservation made
// earlier. A slot further away is reserved only if reserveFar (a delivery's own workflow waits
// for it; the fan-out hands such a delivery over instead, and its workflow asks again).
// Subscriptions without limits or pause pass at once without a query.
func (a *Activities) gateFor(ctx context.Context, sub db.Subscription, res *delivery.Reservation, within, timeout time.Duration, reserveFar bool) (gate, error) {
	now := time.Now()
	paused := sub.PausedUntil.Valid && sub.PausedUntil.Time.After(now)
	if res != nil && !paused && now.Before(res.At.Add(slotTolerance(sub))) {
		return a.gateAt(res.At, res.Lease, now, within), nil
	}
	if res != nil && res.Lease != "" {
		a.release(ctx, sub.ID, res.Lease) // stale: ask again
	}
	if !sub.Throttled(now) {
		return gate{send: true, at: now}, nil
	}
	reserveWithin := within
	if reserveFar {
		reserveWithin = 0
	}
	slot, err := a.Repo.AcquireSlot(ctx, sub, reserveWithin, timeout+10*time.Second)
	if err != nil {
		return gate{}, err
	}
	if !slot.Granted {
		// Wake a little early: the next slot may be free by then and the try sleeps the rest.
		return gate{wait: max(0, slot.Wait-slotLead)}, nil
	}
	g := a.gateAt(slot.At, slot.Lease, now, within)
	g.slot = slot
	return g, nil
}

func (a *Activities) gateAt(at time.Time, lease string, now time.Time, within time.Duration) gate {
	if at.Sub(now) <= within {
		return gate{send: true, at: at, lease: lease}
	}
	// Wake slotLead before the slot: the try that follows sleeps the rest in-process, so the send
	// keeps its slot however late a timer or a task queue hands the try over.
	return gate{wait: max(0, at.Sub(now)-slotLead), res: &delivery.Reservation{At: at, Lease: lease}}
}

// slotTolerance is how late a reserved slot may still be used: half the spacing of the rate (a
// later send could come closer than the spacing to the next slot's). A try that comes later
// asks for a new slot.
func slotTolerance(sub db.Subscription) time.Duration {
	if sub.RateLimit.Valid && sub.RateLimit.Float64 > 0 {
		return max(20*time.Millisecond, time.Duration(float64(time.Second)/sub.RateLimit.Float64/2))
	}
	return time.Second
}

// sleepUntil waits for t unless ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// release ends a send's lease; one that cannot be ended expires on its own.
func (a *Activities) release(ctx context.Context, subscriptionID, lease string) {
	if lease == "" {
		return
	}
	if err := a.Repo.ReleaseSlot(context.WithoutCancel(ctx), subscriptionID, lease); err != nil {
		a.Log.Warn("throttle lease not released; it expires", "subscription_id", subscriptionID, "error", err)
	}
}

// unreserve gives back the slot and lease a gate reserved for a send that will not be made (the
// attempt turned out to be made elsewhere). Without it a rate of 1/min lost a minute, and a
// maxInFlight send counted until its lease expired. One that cannot be given back expires.
func (a *Activities) unreserve(ctx context.Context, sub db.Subscription, g gate) {
	if !g.slot.Granted {
		return
	}
	if err := a.Repo.CancelSlot(context.WithoutCancel(ctx), sub.ID, g.slot); err != nil {
		a.Log.Warn("throttle slot not given back; its lease expires", "subscription_id", sub.ID, "error", err)
	}
}

// maxPause bounds the pause a 429 sets, as the retry policy bounds a delivery's wait.
const maxPause = time.Minute

// adapt slows an endpoint down after a 429 (every subscription, limited or not) and forgets the
// 429 streak after a success.
func (a *Activities) adapt(ctx context.Context, sub db.Subscription, pol delivery.Policy, r webhook.Result) {
	var err error
	switch {
	case r.Err == "" && r.Status == 429:
		limit := maxPause
		if pol.MaxInterval > 0 {
			limit = min(limit, pol.MaxInterval)
		}
		err = a.Repo.PauseEndpoint(ctx, sub.ID, r.RetryAfter, limit)
	case r.Succeeded() && sub.PauseMS > 0:
		err = a.Repo.ResumeEndpoint(ctx, sub.ID)
	}
	if err != nil {
		a.Log.Warn("endpoint pace not adapted", "subscription_id", sub.ID, "error", err)
	}
}

// throttledAttempt is what Attempt answers when the subscription's limits hold a send back: a
// Throttled result for a workflow that waits it out, a retryable failure for an older one. made is
// the last attempt number this series used before this try.
func throttledAttempt(in AttemptInput, g gate, made int) (AttemptResult, error) {
	if in.ThrottleAware {
		return AttemptResult{Throttled: true, Wait: g.wait, Reservation: g.res, Attempt: made}, nil
	}
	return AttemptResult{}, temporal.NewApplicationErrorWithOptions("throttled", ErrTypeThrottled,
		temporal.ApplicationErrorOptions{NextRetryDelay: max(g.wait, time.Second), Cause: errors.New("subscription limits")})
}
