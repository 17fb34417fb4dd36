package integration

import (
	"context"
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
// would take minutes for tens of thousands), each with its own contact and the given policy.
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
	_, err := database.DB.Exec(`INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, event_types, contact_email,
			retry_initial_ms, retry_max_attempts, timeout_ms)
		SELECT id, $2, $2, $3, 'whsec_' || md5(id), ARRAY[$4], id || '@example.test', 100, $5, $6 FROM unnest($1::text[]) AS id`,
		pq.StringArray(ids), app.ID, url, eventType, attempts, timeout)
	if err != nil {
		t.Fatal(err)
	}
}

// requestsByDelivery counts the POSTs a receiver got per deliveryId, and the attempts it saw twice.
func requestsByDelivery(t *testing.T, r *testenv.Receiver) (perDelivery map[string]int, repeated int) {
	t.Helper()
	perDelivery = map[string]int{}
	seen := map[string]bool{}
	for _, q := range r.Requests() {
		var m struct {
			DeliveryID string `json:"deliveryId"`
		}
		if err := json.Unmarshal(q.Body, &m); err != nil {
			t.Fatal(err)
		}
		perDelivery[m.DeliveryID]++
		k := m.DeliveryID + "/" + q.Header.Get("webhook-attempt")
		if seen[k] {
			repeated++
		}
		seen[k] = true
	}
	return perDelivery, repeated
}

// ledgerByDelivery counts the ledger rows of an event's deliveries per delivery.
func ledgerByDelivery(t *testing.T, eventKey string) map[string]int {
	t.Helper()
	var rows []struct {
		ID string `db:"id"`
		N  int    `db:"n"`
	}
	if err := database.DB.Select(&rows, `SELECT d.id, count(a.id) AS n FROM deliveries d
		LEFT JOIN delivery_attempts a ON a.delivery_id = d.id WHERE d.event_id = $1 GROUP BY d.id`, eventKey); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.ID] = r.N
	}
	return out
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

// assertLedgerMatchesRequests checks that every POST a receiver got has exactly one ledger row and
// every ledger row its POST.
func assertLedgerMatchesRequests(t *testing.T, r *testenv.Receiver, eventKey string, want int) {
	t.Helper()
	got, repeated := requestsByDelivery(t, r)
	ledger := ledgerByDelivery(t, eventKey)
	if len(ledger) != want {
		t.Errorf("%d deliveries, want %d", len(ledger), want)
	}
	mismatched := 0
	for id, n := range ledger {
		if got[id] != n {
			if mismatched < 5 {
				t.Errorf("delivery %s: %d POSTs, %d ledger rows", id, got[id], n)
			}
			mismatched++
		}
	}
	if mismatched > 0 || repeated > 0 {
		t.Errorf("%d deliveries whose POSTs and ledger rows differ; %d attempts POSTed twice", mismatched, repeated)
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
	assertLedgerMatchesRequests(t, down, key, n)
	if c := countRows(t, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.event_id = $1 AND a.state = 'completed'`, key); c != 2*n {
		t.Errorf("%d completed attempts, want %d", c, 2*n)
	}
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
	assertLedgerMatchesRequests(t, ok, key, n)
	events, payload := historyStats(t, tc, "event/"+key)
	t.Logf("%d deliveries in %s (%.0f/s); event workflow: %d history events, largest event %d bytes",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), events, payload)
	if events > 300 || payload > 64<<10 {
		t.Errorf("event workflow history: %d events, largest event %d bytes", events, payload)
	}
}

// 300 receivers that hang past their timeout: every attempt is recorded once, none is repeated.
func TestFanOutHangingReceivers(t *testing.T) {
	const n = 300
	s := newStack(t, func(c *config.Config) { c.FanOutConcurrency = 64 })
	app := s.newApp("fan hang")
	hang := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		time.Sleep(1500 * time.Millisecond)
		return 200, nil, "too late"
	})
	t.Cleanup(hang.Close)
	addSubscriptions(t, app, "hang", hang.URL, n, 2, 500)
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "hang-1", "type": "hang"}), http.StatusCreated)
	key := app.ID + "/hang-1"
	eventually(t, 5*time.Minute, "every delivery failed", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'failed'`, key) == n
	})
	assertLedgerMatchesRequests(t, hang, key, n)
	if c := countRows(t, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.event_id = $1 AND a.error LIKE 'timeout%' AND a.state = 'completed'`, key); c != 2*n {
		t.Errorf("%d timed-out attempts recorded, want %d", c, 2*n)
	}
}
