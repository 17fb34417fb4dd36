package integration

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"

	"github.com/hookd/hookd/internal/testenv"
)

// Callback URLs may carry a credential in their query (?token=...). The README promises that
// Temporal history holds hosts only: an event's completion callback and a replay's are sent, yet
// no history of any workflow involved holds the token or the URL's path.
func TestCallbackURLsStayOutOfHistory(t *testing.T) {
	s := newStack(t)
	app := s.newApp("hidden callbacks")
	sub := testenv.NewReceiver(testenv.Statuses(500, 200)) // one retry: a DeliveryWorkflow too
	t.Cleanup(sub.Close)
	var mu sync.Mutex
	var got []string // path?query of each callback
	cb := testenv.NewReceiver(func(_ int, q *http.Request) (int, http.Header, string) {
		mu.Lock()
		got = append(got, q.URL.Path+"?"+q.URL.RawQuery)
		mu.Unlock()
		return 200, nil, "ok"
	})
	t.Cleanup(cb.Close)
	arrived := func(want string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, g := range got {
				if g == want {
					return true
				}
			}
			return false
		}
	}
	s.subscribe(app.Key, map[string]any{"url": sub.URL, "eventTypes": []string{"h.hidden"}})

	notify := cb.URL + "/cb-hidden-path?token=SECRET1"
	s.must(s.call("POST", "/v1/events?callbackURL="+url.QueryEscape(notify), app.Key,
		map[string]any{"id": "hidden-1", "type": "h.hidden"}), http.StatusAccepted)
	eventually(t, 60*time.Second, "the event's completion callback", arrived("/cb-hidden-path?token=SECRET1"))
	s.waitDeliveries(app.Key, "hidden-1", 1, 30*time.Second)

	r := s.must(s.call("POST", "/v1/events/hidden-1/replay", app.Key,
		map[string]any{"callbackUrl": cb.URL + "/replay-hidden-path?token=SECRET2"}), http.StatusAccepted).Data()
	eventually(t, 60*time.Second, "the replay's callback", arrived("/replay-hidden-path?token=SECRET2"))
	var opStatus string
	if err := database.DB.Get(&opStatus, `SELECT status FROM operations WHERE id = $1`, r["requestId"]); err != nil || opStatus != "completed" {
		t.Errorf("replay operation: %q, %v; want completed once its callback is stored", opStatus, err)
	}

	// Every workflow of the app: the event's, its delivery's, its callback's, the replay's, the
	// replayed delivery's and the replay callback's.
	tc := temporalClient(t)
	var ids []string
	eventually(t, 60*time.Second, "every workflow of the app closed", func() bool {
		ids = ids[:0]
		var token []byte
		for {
			resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token})
			if err != nil {
				return false
			}
			for _, e := range resp.Executions {
				if strings.Contains(e.Execution.WorkflowId, app.ID) {
					if e.CloseTime == nil {
						return false
					}
					ids = append(ids, e.Execution.WorkflowId)
				}
			}
			if token = resp.NextPageToken; len(token) == 0 {
				break
			}
		}
		return len(ids) >= 6
	})
	t.Logf("histories: %v", ids)
	for _, id := range ids {
		iter := tc.GetWorkflowHistory(context.Background(), id, "", false, 0)
		events := 0
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatal(err)
			}
			events++
			raw, err := proto.Marshal(ev) // payloads are plain JSON: no codec hides them
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"SECRET1", "SECRET2", "cb-hidden-path", "replay-hidden-path"} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Errorf("%s: event %d (%s) holds %q", id, ev.EventId, ev.EventType, secret)
				}
			}
		}
		if events == 0 {
			t.Errorf("%s: empty history", id)
		}
	}
}
