package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/webhook"
)

// RetryStarter hands deliveries whose first attempt failed to DeliveryWorkflows of their own, and
// wakes a workflow waiting for a group of deliveries. The worker wires it to Temporal (the
// workflows package, which this one cannot import).
type RetryStarter interface {
	StartRetries(ctx context.Context, ev db.Event, rs []delivery.Retry) error
	GroupEnded(ctx context.Context, groupWorkflowID string) error
	// CancelDelivery signals a delivery's workflow to end it as cancelled with the reason; a
	// workflow that is gone needs no signal.
	CancelDelivery(ctx context.Context, workflowID, reason string) error
}

// ErrTypeNotFound is a row an activity needs that does not exist: retrying cannot help.
const ErrTypeNotFound = "NotFound"

const (
	// maxSkippedPerPage bounds the skipped subscriptions a page reports (the count is exact).
	maxSkippedPerPage = 20
	// handoffReserve is the part of a page's time kept for recording and starting retries (at
	// most; a tenth of a shorter page's): a page stops starting attempts that could not end
	// before its deadline minus this.
	handoffReserve = 30 * time.Second
	// flushEvery is how many completed attempts a page records in one statement at most, and
	// flushAfter how long a completed attempt waits for others to join its statement.
	flushEvery = 64
	flushAfter = 50 * time.Millisecond
)

// PageTimeout is the longest one fan-out page runs; pages plan within it.
const PageTimeout = 5 * time.Minute

// FanOutPageInput names the event and where the previous page ended.
type FanOutPageInput struct {
	EventID string
	After   string // the last subscription id of the previous page; "" for the first page
}

// FanOutPageResult is what one page did. Its size is bounded whatever the fan-out.
type FanOutPageResult struct {
	Next         string // where the next page starts; "" after the last page
	Matched      int
	Succeeded    int
	Retrying     int // handed to DeliveryWorkflows
	Ended        int // found failed or cancelled already (a page run again after a crash)
	SkippedCount int
	Skipped      []Skipped // the first maxSkippedPerPage of them
	AppID        string
	ClientID     string
	// Notify and NotifyHost: as in FanOutResult (the URL stays in the event row).
	Notify     bool   `json:",omitempty"`
	NotifyHost string `json:",omitempty"`
	// NotifyURL is what results of older releases carried instead (see FanOutResult).
	NotifyURL string `json:",omitempty"`
}

// FanOutPage delivers an event to one page of its targets: it creates their deliveries, makes
// every first attempt (concurrently, each ledger row written before its POST and completed after
// it) and starts a DeliveryWorkflow for each that failed. It plans within its deadline: slow
// receivers make it stop early and report where the next page starts. It is idempotent: run
// again, it skips what the ledger shows attempted and hands it to retries.
func (a *Activities) FanOutPage(ctx context.Context, in FanOutPageInput) (FanOutPageResult, error) {
	ev, err := a.event(ctx, in.EventID)
	if err != nil {
		return FanOutPageResult{}, err
	}
	// Outcomes the previous try could not record are recorded first: the page then sees them.
	if _, err := a.recordCarried(ctx); err != nil {
		return FanOutPageResult{}, fmt.Errorf("fan out %s: %w", ev.ID, err)
	}
	// As a regular activity: a crashed worker's page moves on quickly. Stopped before carrying
	// outcomes (a later beat would replace them), and again on return.
	stop := sync.OnceFunc(heartbeat(ctx, 2*time.Second))
	defer stop()
	p, err := a.runPage(ctx, ev, in.After)
	if err != nil {
		stop()
		a.carry(ctx, err) // known outcomes it could not record go to the next try
		return FanOutPageResult{}, err
	}
	if err := a.handOff(ctx, ev, p); err != nil {
		return FanOutPageResult{}, err
	}
	return p.res, nil
}

// event loads an event; a missing one is final.
func (a *Activities) event(ctx context.Context, id string) (db.Event, error) {
	ev, err := a.Repo.LoadEvent(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return db.Event{}, temporal.NewNonRetryableApplicationError("event "+id+" does not exist", ErrTypeNotFound, err)
	}
	if err != nil {
		return db.Event{}, fmt.Errorf("fan out %s: %w", id, err)
	}
	return ev, nil
}

// pageItem is one target of a page, in subscription id order.
type pageItem struct {
	key     string // subscription id (the page cursor), or the URL of a one-off callback
	skipped *Skipped
	d       db.Ensured
	t       sendTarget
	gate    gate // a throttled subscription's send slot
}

// page is a page's outcome before its retries are handed off.
type page struct {
	res       FanOutPageResult
	retries   []delivery.Retry
	recovered []string  // deliveries attempted by a run that stopped: their sending rows are interrupted
	succeeded []Outcome // for the legacy FanOut, which reports them
}

// runPage makes the first attempts of one page of targets: it plans them a batch of free slots at
// a time (pageRun.plan) and executes each batch (pageRun.execute), recording outcomes as they come.
func (a *Activities) runPage(ctx context.Context, ev db.Event, after string) (*page, error) {
	items, full, err := a.pageItems(ctx, ev, after)
	if err != nil {
		return nil, err
	}
	r := a.newPageRun(ctx, ev, items)
	if err := r.run(ctx); err != nil {
		return nil, r.fail(ctx, err)
	}
	p := r.p
	if r.stopped {
		p.res.Next = items[r.next-1].key
	} else if full {
		p.res.Next = items[len(items)-1].key
	}
	a.Log.Debug("fan-out page", "event_id", ev.ID, "after", after, "next", p.res.Next, "matched", p.res.Matched,
		"succeeded", p.res.Succeeded, "retrying", len(p.retries))
	return p, nil
}

// pageRun is one run of a page: its targets, its budget, the attempts under way and what it did.
type pageRun struct {
	a     *Activities
	ev    db.Event
	items []pageItem
	p     *page
	// deadline is the page's; reserve the part of it kept for recording and handing off: no
	// attempt starts that could not end before deadline minus reserve.
	deadline time.Time
	reserve  time.Duration
	conc     int // attempts in flight at most
	results  chan attemptDone
	rows     []db.Attempt // completed attempts not yet recorded
	inflight int
	next     int  // the first item not planned yet
	stopped  bool // out of time: the items from next on go to the next page
}

// attemptDone is a completed first attempt of the page's i-th item.
type attemptDone struct {
	i   int
	r   webhook.Result
	row db.Attempt
}

func (a *Activities) newPageRun(ctx context.Context, ev db.Event, items []pageItem) *pageRun {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(PageTimeout)
	}
	conc := max(1, a.Config.FanOutConcurrency)
	return &pageRun{a: a, ev: ev, items: items, deadline: deadline, conc: conc,
		reserve: min(handoffReserve, time.Until(deadline)/10), results: make(chan attemptDone, conc),
		p: &page{res: FanOutPageResult{AppID: ev.AppID, ClientID: ev.ClientID, Notify: ev.NotifyURL.String != "",
			NotifyHost: delivery.HostOf(ev.NotifyURL.String)}}}
}

// run plans and executes the page's attempts until every item is planned (or time is short) and
// every attempt under way has completed and is recorded.
func (r *pageRun) run(ctx context.Context) error {
	flushTimer := time.NewTimer(time.Hour)
	defer flushTimer.Stop()
	for r.planning() || r.inflight > 0 {
		// Start more attempts once a quarter of the slots are free (or nothing is in flight): their
		// ledger rows are claimed in one statement per batch, not one per POST.
		if r.planning() && (r.inflight == 0 || r.conc-r.inflight >= max(1, r.conc/4)) {
			launch, claims, err := r.plan(ctx)
			if err != nil {
				return err
			}
			if err := r.execute(ctx, launch, claims); err != nil {
				return err
			}
			continue
		}
		select {
		case x := <-r.results:
			r.inflight--
			if len(r.rows) == 0 {
				flushTimer.Reset(flushAfter)
			}
			r.completed(x)
			if len(r.rows) >= flushEvery {
				if err := r.flush(ctx); err != nil {
					return err
				}
			}
		case <-flushTimer.C:
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
	}
	return r.flush(ctx)
}

// planning reports whether items are left to plan.
func (r *pageRun) planning() bool { return r.next < len(r.items) && !r.stopped }

// plan walks the page in order up to the free slots: it counts what needs no POST, hands what an
// earlier run attempted to its retry workflow, reserves throttled subscriptions' slots, and stops
// at the first attempt the page's time cannot hold. launch are the items to send, claims the
// ledger rows to claim for them (one statement for all).
func (r *pageRun) plan(ctx context.Context) (launch []int, claims []db.Claim, err error) {
	for r.next < len(r.items) && r.inflight+len(launch) < r.conc {
		it := &r.items[r.next]
		if r.outOfTime(r.next) {
			r.stopped = true // the rest goes to the next page, so a page never outlives its deadline
			break
		}
		send, claim, err := r.planItem(ctx, it)
		if err != nil {
			return nil, nil, err
		}
		if send {
			launch = append(launch, r.next)
		}
		if claim {
			claims = append(claims, db.Claim{DeliveryID: it.d.ID, Attempt: 1, URL: it.t.URL})
		}
		r.next++
	}
	return launch, claims, nil
}

// outOfTime reports whether the i-th item's first attempt, still to make, could not end before
// the page's deadline minus its reserve (the first item is always tried).
func (r *pageRun) outOfTime(i int) bool {
	it := &r.items[i]
	return it.skipped == nil && it.d.Status == delivery.StatusPending && it.d.Attempts == 0 && i > 0 &&
		time.Now().Add(it.t.Policy.Timeout+r.reserve).After(r.deadline)
}

// planItem decides what the page does with one target: send (and claim its ledger row first,
// unless it came claimed), or only count it.
func (r *pageRun) planItem(ctx context.Context, it *pageItem) (send, claim bool, err error) {
	p := r.p
	if it.skipped != nil {
		p.res.SkippedCount++
		if len(p.res.Skipped) < maxSkippedPerPage {
			p.res.Skipped = append(p.res.Skipped, *it.skipped)
		}
		return false, false, nil
	}
	p.res.Matched++
	switch {
	case it.d.Status == delivery.StatusSucceeded:
		p.res.Succeeded++
		p.succeeded = append(p.succeeded, Outcome{DeliveryID: it.d.ID, SubscriptionID: it.d.SubscriptionID.String,
			Status: it.d.Status, Attempts: it.d.Attempts})
		return false, false, nil
	case it.d.Status != delivery.StatusPending:
		p.res.Ended++
		return false, false, nil
	case it.d.Claimed:
		return true, false, nil
	case it.d.Attempts == 0 && it.t.sub.Throttled(time.Now()):
		send, err := r.reserveSlot(ctx, it)
		return send, send, err
	case it.d.Attempts == 0:
		return true, true, nil
	default: // attempted by a run that stopped: its retry workflow takes over
		p.recover(it)
		return false, false, nil
	}
}

// reserveSlot reserves a throttled subscription's send slot for a first attempt. Without one
// within the fan-out's wait, the delivery goes to its workflow, which waits and asks again: no
// attempt is made, none is counted.
func (r *pageRun) reserveSlot(ctx context.Context, it *pageItem) (send bool, err error) {
	if it.gate, err = r.a.gateFor(ctx, it.t.sub, nil, fanOutThrottleWait, it.t.Policy.Timeout, false); err != nil {
		return false, err
	}
	if !it.gate.send {
		rt := it.d.Retry(it.t.Policy, 0, it.t.URL)
		rt.Delay, rt.Reservation = it.gate.wait, it.gate.res
		r.p.retries = append(r.p.retries, rt)
		return false, nil
	}
	return true, nil
}

// execute claims the planned attempts' ledger rows and starts the attempts this run won.
func (r *pageRun) execute(ctx context.Context, launch []int, claims []db.Claim) error {
	won := map[string]bool{}
	if len(claims) > 0 {
		var err error
		if won, err = r.a.Repo.ClaimAttempts(ctx, claims); err != nil {
			for _, i := range launch {
				r.a.unreserve(ctx, r.items[i].t.sub, r.items[i].gate) // no attempt starts
			}
			return err
		}
	}
	for _, i := range launch {
		it := r.items[i]
		if !it.d.Claimed && !won[it.d.ID] {
			// Another run of this page made or is making that attempt (claims leave the
			// delivery's count as it is until the attempt is recorded); a throttled
			// subscription's slot and lease reserved for it go back.
			r.a.unreserve(ctx, it.t.sub, it.gate)
			r.items[i].d.Attempts = max(r.items[i].d.Attempts, 1)
			r.p.recover(&r.items[i])
			continue
		}
		r.inflight++
		go r.send(ctx, i, it)
	}
	return nil
}

// send makes the first attempt of it (the page's i-th item, a copy) at its slot and reports it
// on results.
func (r *pageRun) send(ctx context.Context, i int, it pageItem) {
	if it.gate.lease != "" {
		defer r.a.release(ctx, it.t.sub.ID, it.gate.lease)
	}
	_ = sleepUntil(ctx, it.gate.at) // a context that ends fails the attempt itself
	res, row, _ := r.a.attempt(ctx, r.ev, it.d.Delivery, it.t, 1)
	if it.t.sub.ID != "" {
		r.a.adapt(ctx, it.t.sub, it.t.Policy, res)
	}
	r.results <- attemptDone{i: i, r: res, row: row}
}

// completed folds a completed first attempt into the page's result: its ledger row to record,
// and a success or a retry to hand over.
func (r *pageRun) completed(x attemptDone) {
	it := r.items[x.i]
	r.rows = append(r.rows, x.row)
	retry := it.d.Retry(it.t.Policy, 1, it.t.URL)
	if x.r.Succeeded() {
		r.a.Metrics.ObserveDelivered(delivery.StatusSucceeded, r.ev.ReceivedAt)
		r.p.res.Succeeded++
		r.p.succeeded = append(r.p.succeeded, Outcome{DeliveryID: it.d.ID, SubscriptionID: retry.SubscriptionID, Status: delivery.StatusSucceeded, Attempts: 1})
		return
	}
	retry.Gone = x.r.Gone()
	// Past the policy's maximum duration the workflow wakes to close the delivery, no attempt made.
	retry.Delay, _ = it.t.Policy.NextDelay(1, x.r.RetryAfter, it.d.CreatedAt, time.Now())
	if it.t.Policy.MaxAttempts == 1 {
		retry.Delay = 0 // no attempt left: its workflow closes it at once, not after the wait
	}
	r.p.retries = append(r.p.retries, retry)
}

// flush records the completed attempts' ledger rows.
func (r *pageRun) flush(ctx context.Context) error {
	if err := r.a.record(ctx, r.rows); err != nil {
		return err
	}
	r.rows = r.rows[:0]
	return nil
}

// fail gives up on the page, but first waits for the attempts under way and records what it can.
func (r *pageRun) fail(ctx context.Context, err error) error {
	for ; r.inflight > 0; r.inflight-- {
		r.rows = append(r.rows, (<-r.results).row)
	}
	if ferr := r.flush(ctx); ferr != nil && ferr != err {
		// Outcomes still unrecorded: FanOutPage carries them to its next try.
		return fmt.Errorf("fan out %s: %w; %w", r.ev.ID, err, ferr)
	}
	return fmt.Errorf("fan out %s: %w", r.ev.ID, err)
}

// recover hands a delivery that an earlier run attempted to a retry workflow.
func (p *page) recover(it *pageItem) {
	p.recovered = append(p.recovered, it.d.ID)
	r := it.d.Retry(it.t.Policy, it.d.Attempts, it.t.URL)
	r.Delay = it.t.Policy.Backoff(it.d.Attempts)
	p.retries = append(p.retries, r)
}

// pageItems reads one page of an event's targets, evaluates their filters and ensures the
// deliveries of those that match. full reports a page as long as the page size (more may follow).
func (a *Activities) pageItems(ctx context.Context, ev db.Event, after string) (items []pageItem, full bool, err error) {
	var want []db.Delivery
	// A throttled subscription's first attempt is claimed only once its slot is granted.
	throttled := map[string]bool{}
	if ev.Kind == db.KindCallback || ev.Kind == db.KindTest {
		target := a.callbackTarget
		if ev.Kind == db.KindTest {
			target = a.testTarget // never the app's other subscriptions
		}
		t, d, err := target(ctx, ev)
		if err != nil {
			return nil, false, fmt.Errorf("fan out %s: %w", ev.ID, err)
		}
		items = append(items, pageItem{key: d.ID, t: t}) // a key, never the URL: keys may become cursors in history
		want = append(want, d)
	} else {
		size := a.Config.FanOutPageSize
		if size <= 0 {
			size = 500
		}
		subs, err := a.Repo.Targets(ctx, ev.AppID, ev.Topic, ev.Type, after, size)
		if err != nil {
			return nil, false, fmt.Errorf("fan out %s: %w", ev.ID, err)
		}
		full = len(subs) == size
		filters := newFilterRun(ev)
		for _, t := range subs {
			if ok, why := filters.matches(t); !ok {
				items = append(items, pageItem{key: t.ID, skipped: &Skipped{SubscriptionID: t.ID, Reason: why}})
				continue
			}
			items = append(items, pageItem{key: t.ID, t: subscriptionTarget(a.Config, t.Subscription, t.GetAPIPath)})
			if t.Throttled(time.Now()) {
				throttled[delivery.DeliveryID(ev.ID, t.ID, 0)] = true
			}
			want = append(want, db.Delivery{
				ID: delivery.DeliveryID(ev.ID, t.ID, 0), EventID: ev.ID, AppID: t.AppID, URL: t.URL,
				SubscriptionID: nullString(t.ID), WorkflowID: delivery.DeliveryWorkflowID(ev.ID, t.ID, 0),
			})
		}
		a.recordFilterFailures(ctx, ev, filters)
	}
	// The first deliveries get their ledger rows with their creation: a small fan-out makes its
	// first attempts after a single statement.
	claim := map[string]bool{}
	for i := range want {
		want[i].GroupID = nullString(ev.WorkflowID)
		if i < max(1, a.Config.FanOutConcurrency) && !throttled[want[i].ID] {
			claim[want[i].ID] = true
		}
	}
	dispatched := ""
	if after == "" {
		dispatched = ev.ID
	}
	ds, err := a.Repo.EnsureDeliveries(ctx, want, claim, dispatched)
	if err != nil {
		return nil, false, fmt.Errorf("fan out %s: %w", ev.ID, err)
	}
	byID := make(map[string]db.Ensured, len(ds))
	for _, d := range ds {
		byID[d.ID] = d
	}
	j := 0
	for i := range items {
		if items[i].skipped == nil {
			items[i].d = byID[want[j].ID]
			j++
		}
	}
	return items, full, nil
}

// handOff starts the DeliveryWorkflows of a page's failed first attempts.
func (a *Activities) handOff(ctx context.Context, ev db.Event, p *page) error {
	if err := a.interruptRecovered(ctx, ev, p); err != nil {
		return err
	}
	if len(p.retries) == 0 {
		return nil
	}
	if err := a.Retries.StartRetries(ctx, ev, p.retries); err != nil {
		return fmt.Errorf("fan out %s: %w", ev.ID, err)
	}
	p.res.Retrying = len(p.retries)
	return nil
}

// interruptRecovered marks the attempts that a stopped run of the page left sending as interrupted.
func (a *Activities) interruptRecovered(ctx context.Context, ev db.Event, p *page) error {
	if len(p.recovered) == 0 {
		return nil
	}
	if err := a.Repo.InterruptAttempts(ctx, p.recovered); err != nil {
		return fmt.Errorf("fan out %s: %w", ev.ID, err)
	}
	return nil
}

// PendingInGroup counts the deliveries of a group that have not ended.
func (a *Activities) PendingInGroup(ctx context.Context, group string) (int, error) {
	c, err := a.Repo.GroupCounts(ctx, group)
	if err != nil {
		return 0, err
	}
	return c[delivery.StatusPending], nil
}

// GroupCounts counts a group's deliveries by status.
func (a *Activities) GroupCounts(ctx context.Context, group string) (map[string]int, error) {
	return a.Repo.GroupCounts(ctx, group)
}

// groupEnded wakes the workflow waiting for a delivery's group when that delivery was its last.
// A failure is only logged: failing the caller would lose what it did, and the waiting workflow
// looks on its own every few minutes.
func (a *Activities) groupEnded(ctx context.Context, deliveryID string) {
	g, err := a.Repo.EndedGroup(ctx, deliveryID)
	if err == nil && g != "" {
		err = a.Retries.GroupEnded(ctx, g)
	}
	if err != nil {
		a.Log.Warn("group end not signalled; its workflow finds out on its own", "delivery_id", deliveryID, "error", err)
	}
}

// FanOut is the fan-out of event workflows started before fan-outs were paged (the legacy
// EventWorkflow): every page at once, failed first attempts returned for the workflow to retry
// as children. Kept until no such workflow is open.
func (a *Activities) FanOut(ctx context.Context, in FanOutInput) (FanOutResult, error) {
	ev, err := a.event(ctx, in.EventID)
	if err != nil {
		return FanOutResult{}, err
	}
	res := FanOutResult{AppID: ev.AppID, ClientID: ev.ClientID, Notify: ev.NotifyURL.String != "", NotifyHost: delivery.HostOf(ev.NotifyURL.String)}
	after := ""
	for {
		p, err := a.runPage(ctx, ev, after)
		if err != nil {
			return FanOutResult{}, err
		}
		if err := a.interruptRecovered(ctx, ev, p); err != nil {
			return FanOutResult{}, err
		}
		res.Matched += p.res.Matched
		res.Succeeded = append(res.Succeeded, p.succeeded...)
		res.Retry = append(res.Retry, p.retries...)
		res.Skipped = append(res.Skipped, p.res.Skipped...)
		if p.res.Next == "" {
			return res, nil
		}
		after = p.res.Next
	}
}
