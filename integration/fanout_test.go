package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
)

// addSubscriptions stores n subscriptions of app to eventType at url in one statement (the API
// would take minutes for tens of thousands), each with its own contact and the given policy (and
// 30 minutes of retrying).
func addSubscriptions(t *testing.T, app testApp, eventType, url string, n int, maxAttempts int, timeoutMS int) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("sub_%s_%06d", strings.TrimPrefix(app.ID, "app:")[:8], i)
	}
	var attempts, timeout any
	if maxAttempts > 0 {
		attempts = maxAttempts
	}
	if timeoutMS > 0 {
		timeout = timeoutMS
	}
	// The attempts, not the time, end a delivery: a slow engine (the real server on 2 cores takes
	// minutes to start thousands of retry workflows) must not cut a series short.
	_, err := database.DB.Exec(`INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, event_types, contact_email,
			retry_initial_ms, retry_max_attempts, timeout_ms, retry_max_duration_ms)
		SELECT id, $2, $2, $3, 'whsec_' || md5(id), ARRAY[$4], id || '@example.test', 100, $5, $6, 1800000 FROM unnest($1::text[]) AS id`,
		pq.StringArray(ids), app.ID, url, eventType, attempts, timeout)
	if err != nil {
		t.Fatal(err)
	}
}

// historyStats reads a workflow's history (every run) and reports its length and largest payload.
func historyStats(t *testing.T, c client.Client, workflowID string) (events, maxPayload int) {
	t.Helper()
	iter := c.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		b, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		maxPayload = max(maxPayload, len(b))
	}
	return events, maxPayload
}

// assertEveryPOSTInLedger compares, per delivery attempt, what the receivers got with the ledger
// of the events matching eventLike: every POST has exactly one row with its attempt number, and no
// attempt was POSTed twice. A row may lack its POST only if the request never got an answer: the
// worker was killed around it (interrupted: outcome unknown) or the connection failed or timed out
// before the receiver's handler saw it. Those are returned.
func assertEveryPOSTInLedger(t *testing.T, eventLike string, receivers ...*testenv.Receiver) (unsent int) {
	t.Helper()
	type key struct {
		delivery string
		attempt  int
	}
	posts := map[key]int{}
	for _, r := range receivers {
		for _, q := range r.Requests() {
			var m struct {
				DeliveryID string `json:"deliveryId"`
				RetryCount int    `json:"retryCount"`
			}
			if err := json.Unmarshal(q.Body, &m); err != nil {
				t.Fatal(err)
			}
			posts[key{m.DeliveryID, m.RetryCount + 1}]++
		}
	}
	var rows []struct {
		DeliveryID string        `db:"delivery_id"`
		Attempt    int           `db:"attempt"`
		State      string        `db:"state"`
		Status     sql.NullInt64 `db:"response_status"`
		Error      string        `db:"error"`
	}
	if err := database.DB.Select(&rows, `SELECT a.delivery_id, a.attempt, a.state, a.response_status, a.error
		FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id LIKE $1`, eventLike); err != nil {
		t.Fatal(err)
	}
	inLedger := map[key]bool{}
	wrong := 0
	for _, r := range rows {
		k := key{r.DeliveryID, r.Attempt}
		inLedger[k] = true
		switch {
		case r.State == "sending":
			wrong++
			var ledger []struct {
				Attempt int       `db:"attempt"`
				State   string    `db:"state"`
				Started time.Time `db:"started_at"`
				Error   string    `db:"error"`
			}
			_ = database.DB.Select(&ledger, `SELECT attempt, state, started_at, error FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, r.DeliveryID)
			t.Errorf("attempt %d of %s still marked sending after its delivery ended; its ledger: %+v", r.Attempt, r.DeliveryID, ledger)
		case posts[k] > 0:
		case r.State == "interrupted" || !r.Status.Valid:
			unsent++
		default:
			wrong++
			if wrong < 5 {
				t.Errorf("attempt %d of %s has an answer (%d) in the ledger but no receiver got it", r.Attempt, r.DeliveryID, r.Status.Int64)
			}
		}
	}
	missing, twice := 0, 0
	for k, n := range posts {
		if !inLedger[k] {
			missing++
		}
		if n > 1 {
			twice++
		}
	}
	if missing > 0 || twice > 0 || wrong > 0 {
		t.Errorf("%d POSTs with no ledger row, %d attempts POSTed more than once, %d rows wrong", missing, twice, wrong)
	}
	return unsent
}

// assertAttemptsEach checks that each of an event's n deliveries has exactly want ledger rows, and
// shows the ledger of a few that do not.
func assertAttemptsEach(t *testing.T, eventKey string, n, want int) {
	t.Helper()
	if c := countRows(t, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.event_id = $1`, eventKey); c != want*n {
		t.Errorf("%d attempts recorded, want %d", c, want*n)
		var odd []struct {
			ID       string `db:"id"`
			Attempts int    `db:"attempts"`
			Error    string `db:"last_error"`
			Rows     string `db:"rows"`
		}
		_ = database.DB.Select(&odd, `SELECT d.id, d.attempts, d.last_error, (SELECT string_agg(a.attempt || ':' || a.state || ':' || a.error, ' | ' ORDER BY a.attempt)
			FROM delivery_attempts a WHERE a.delivery_id = d.id) AS rows FROM deliveries d WHERE d.event_id = $1
			AND (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id) <> $2 LIMIT 5`, eventKey, want)
		t.Logf("deliveries without %d attempts: %+v", want, odd)
	}
}

// One event to 2,500 subscribers whose receiver answers 500: far more retry workflows than
// Temporal's 2,000 pending children, yet every delivery ends failed by its own policy, its contact
// hears once, the failures are listed and the completion callback reports them.
func TestFanOutAllFailing(t *testing.T) {
	const n = 2500
	s := newStack(t)
	app := s.newApp("fan fail")
	down := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "down" })
	t.Cleanup(down.Close)
	done := testenv.NewReceiver(nil)
	t.Cleanup(done.Close)
	addSubscriptions(t, app, "storm", down.URL, n, 2, 0)
	started := time.Now()
	s.must(s.call("POST", "/v1/events?callbackURL="+done.URL, app.Key, map[string]any{"id": "storm-1", "type": "storm"}), http.StatusAccepted)
	key := app.ID + "/storm-1"
	eventually(t, 8*time.Minute, "every delivery failed", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'failed'`, key) == n
	})
	t.Logf("%d deliveries failed after 2 attempts each in %s", n, time.Since(started).Round(time.Millisecond))
	if unsent := assertEveryPOSTInLedger(t, key, down); unsent > 0 {
		t.Errorf("%d attempts recorded that the receiver never got", unsent)
	}
	assertAttemptsEach(t, key, n, 2)
	eventually(t, 2*time.Minute, "one e-mail per failed delivery", func() bool { return len(s.SMTP.Messages()) >= n })
	time.Sleep(500 * time.Millisecond) // a second e-mail for one delivery would arrive about now
	mails := s.SMTP.Messages()
	to := map[string]int{}
	for _, m := range mails {
		for _, r := range m.To {
			to[r]++
		}
	}
	if len(mails) != n || len(to) != n {
		t.Errorf("%d e-mails to %d contacts, want %d to %d", len(mails), len(to), n, n)
	}
	page := s.must(s.call("GET", "/v1/deliveries?status=failed&limit=500", app.Key, nil), http.StatusOK).Data()
	if ds, _ := page["deliveries"].([]any); len(ds) != 500 {
		t.Errorf("status=failed lists %d on its first page of 500: %v", len(ds), page["meta"])
	}
	eventually(t, time.Minute, "event.completed callback", func() bool { return done.Count() >= 1 })
	var cb struct {
		EventType string `json:"eventType"`
		Data      struct {
			Counts     map[string]int `json:"counts"`
			Deliveries []any          `json:"deliveries"`
			Truncated  bool           `json:"deliveriesTruncated"`
		} `json:"data"`
	}
	if err := json.Unmarshal(done.Requests()[0].Body, &cb); err != nil {
		t.Fatal(err)
	}
	if cb.EventType != "event.completed" || cb.Data.Counts["failed"] != n || len(cb.Data.Deliveries) != 1000 || !cb.Data.Truncated {
		t.Errorf("callback %s: counts %v, %d deliveries listed, truncated %v", cb.EventType, cb.Data.Counts, len(cb.Data.Deliveries), cb.Data.Truncated)
	}
	tc := temporalClient(t)
	events, payload := historyStats(t, tc, "event/"+key)
	t.Logf("event workflow: %d history events, largest event %d bytes", events, payload)
	if events > 200 || payload > 64<<10 {
		t.Errorf("event workflow history: %d events, largest %d bytes", events, payload)
	}
}

// One event to 20,000 answering subscribers: all delivered, every POST in the ledger once, and
// the event workflow's history stays small.
func TestFanOutTwentyThousand(t *testing.T) {
	const n = 20000
	s := newStack(t)
	app := s.newApp("fan ok")
	ok := testenv.NewReceiver(nil)
	t.Cleanup(ok.Close)
	addSubscriptions(t, app, "wide", ok.URL, n, 0, 0)
	started := time.Now()
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "wide-1", "type": "wide"}), http.StatusCreated)
	key := app.ID + "/wide-1"
	tc := temporalClient(t)
	eventually(t, 5*time.Minute, "the event workflow closed", func() bool {
		d, err := tc.DescribeWorkflowExecution(context.Background(), "event/"+key, "")
		return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
	})
	took := time.Since(started)
	if c := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'succeeded'`, key); c != n {
		t.Fatalf("%d deliveries succeeded, want %d", c, n)
	}
	if unsent := assertEveryPOSTInLedger(t, key, ok); unsent > 0 {
		t.Errorf("%d attempts recorded that the receiver never got", unsent)
	}
	events, payload := historyStats(t, tc, "event/"+key)
	t.Logf("%d deliveries in %s (%.0f/s); event workflow: %d history events, largest event %d bytes",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), events, payload)
	if events > 300 || payload > 64<<10 {
		t.Errorf("event workflow history: %d events, largest event %d bytes", events, payload)
	}
	// A whole-event replay carries its replays in one workflow input: refused at this size.
	r := s.call("POST", "/v1/events/wide-1/replay", app.Key, nil)
	if r.Status != http.StatusUnprocessableEntity || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("replay of a 20,000-target event: %d %s", r.Status, r.Raw)
	}
	if c := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND replay > 0`, key); c != 0 {
		t.Errorf("%d replay rows left behind", c)
	}
}

// publishToSlowReceivers publishes one event to n subscriptions (with maxAttempts and timeoutMS)
// whose receiver answers 200 after 1.5 s, and returns the receiver and the event's key.
func publishToSlowReceivers(t *testing.T, n, maxAttempts, timeoutMS int, tweak func(*config.Config)) (*testenv.Receiver, string) {
	t.Helper()
	s := newStack(t, tweak)
	app := s.newApp("fan slow")
	slow := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		time.Sleep(1500 * time.Millisecond)
		return 200, nil, "slow"
	})
	t.Cleanup(slow.Close)
	addSubscriptions(t, app, "slow", slow.URL, n, maxAttempts, timeoutMS)
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "slow-1", "type": "slow"}), http.StatusCreated)
	return slow, app.ID + "/slow-1"
}

// 300 receivers that hang past their timeout: every attempt is recorded once, none is repeated.
func TestFanOutHangingReceivers(t *testing.T) {
	const n = 300
	hang, key := publishToSlowReceivers(t, n, 2, 500, func(c *config.Config) { c.FanOutConcurrency = 64 })
	eventually(t, 5*time.Minute, "every delivery failed", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'failed'`, key) == n
	})
	// A request that timed out may not have reached the handler of an overloaded receiver: that
	// is the only way a row may lack its POST here.
	unsent := assertEveryPOSTInLedger(t, key, hang)
	assertAttemptsEach(t, key, n, 2)
	// On a starved machine (the race detector, a busy CI) a workflow task may time out during the
	// page and the page run again: the attempts it had made are then interrupted, never repeated.
	interrupted := countRows(t, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.event_id = $1 AND a.state = 'interrupted'`, key)
	t.Logf("%d hanging receivers: %d attempts, all recorded; %d timed out before the receiver saw them, %d interrupted", n, 2*n, unsent, interrupted)
}

// Receivers slower than a page's budget: the page stops starting attempts it could not finish in
// time and the next page carries on, so no page times out and no POST is made twice.
func TestFanOutPageBudget(t *testing.T) {
	const n = 40
	slow, key := publishToSlowReceivers(t, n, 0, 3000, func(c *config.Config) { c.FanOutConcurrency, c.FanOutPageTimeout = 4, 8*time.Second })
	eventually(t, 2*time.Minute, "every delivery succeeded", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'succeeded'`, key) == n
	})
	if unsent := assertEveryPOSTInLedger(t, key, slow); unsent > 0 || slow.Count() != n {
		t.Errorf("%d POSTs for %d deliveries, %d rows without a POST", slow.Count(), n, unsent)
	}
	// A page that outlived its budget would have been run again, and its attempts handed to retry
	// workflows as interrupted: every delivery would not then have exactly one completed attempt.
	if c := countRows(t, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.event_id = $1 AND a.state = 'completed' AND a.attempt = 1 AND a.response_status = 200`, key); c != n {
		t.Errorf("%d first attempts completed with 200, want %d", c, n)
	}
	hist := historyText(t, temporalClient(t), "event/"+key)
	pages := strings.Count(hist, "EVENT_TYPE_MARKER_RECORDED")
	if pages < 3 {
		t.Errorf("%d fan-out pages, want several: each page stops at its budget", pages)
	}
	t.Logf("%d deliveries of 1.5 s each, 4 at a time, in %d pages of an 8 s budget", n, pages)
}
