package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// PostgreSQL goes away just as a receiver answers 200 (a routine restart): the answer is known,
// so it is recorded once the database is back and the receiver gets no second POST. Two cases:
// a fan-out's first attempt (the database back within the page's time), and a retry whose
// Attempt activity runs out of time before the database is back (the outcome goes to the
// activity's next try, which records it instead of POSTing again).
func TestDatabaseRestartDoesNotResendSuccesses(t *testing.T) {
	s, proxy := proxiedStack(t)
	app := s.newApp("pg restart")
	var cutOnce sync.Once
	// outage cuts PostgreSQL off for d, from within the receiver's handler: before it answers.
	outage := func(d time.Duration) {
		cutOnce.Do(func() {
			proxy.Cut()
			go func() {
				time.Sleep(d)
				if err := proxy.Restore(); err != nil {
					t.Error(err)
				}
			}()
		})
	}

	// 1. The first attempt, made by the fan-out page: 4 s without the database.
	first := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		outage(4 * time.Second)
		return 200, nil, "ok"
	})
	t.Cleanup(first.Close)
	s.subscribe(app.Key, map[string]any{"url": first.URL, "eventTypes": []string{"pg1"}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "pg1", "type": "pg1"}), http.StatusCreated)
	eventually(t, 60*time.Second, "the first delivery succeeded", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'succeeded'`, app.ID+"/pg1") == 1
	})

	// 2. The second attempt (the first got a 500), made by the Attempt activity, whose time (the
	// attempt timeout of 1 s plus 10 s) runs out before the database is back after 15 s.
	cutOnce = sync.Once{}
	second := testenv.NewReceiver(func(n int, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 500, nil, "not yet"
		}
		outage(15 * time.Second)
		return 200, nil, "ok"
	})
	t.Cleanup(second.Close)
	s.subscribe(app.Key, map[string]any{"url": second.URL, "eventTypes": []string{"pg2"}, "timeoutMs": 1000})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "pg2", "type": "pg2"}), http.StatusCreated)
	eventually(t, 90*time.Second, "the second delivery succeeded", func() bool {
		n := 0
		_ = database.DB.Get(&n, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND status = 'succeeded'`, app.ID+"/pg2")
		return n == 1
	})
	time.Sleep(2 * time.Second) // a resend would follow within the retry policy's backoff (at most 1 s)

	if n := first.Count(); n != 1 {
		t.Errorf("first receiver got %d POSTs, want 1", n)
	}
	if n := second.Count(); n != 2 {
		t.Errorf("second receiver got %d POSTs, want 2 (a 500, then a 200)", n)
	}
	var ledger []struct {
		Event   string `db:"event_id"`
		Attempt int    `db:"attempt"`
		State   string `db:"state"`
		Status  *int   `db:"response_status"`
	}
	if err := database.DB.Select(&ledger, `SELECT d.event_id, a.attempt, a.state, a.response_status
		FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.app_id = $1 ORDER BY d.event_id, a.attempt`, app.ID); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range ledger {
		st := "-"
		if r.Status != nil {
			st = fmt.Sprint(*r.Status)
		}
		got = append(got, fmt.Sprintf("%s#%d:%s:%s", strings.TrimPrefix(r.Event, app.ID+"/"), r.Attempt, r.State, st))
	}
	if want := "pg1#1:completed:200 pg2#1:completed:500 pg2#2:completed:200"; strings.Join(got, " ") != want {
		t.Errorf("ledger %v, want %s", got, want)
	}
	if n := len(s.SMTP.Messages()); n != 0 {
		t.Errorf("%d e-mails", n)
	}
}
