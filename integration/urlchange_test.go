package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// A subscription moved to a new URL (PATCH url) gets its pending retries at the new URL, signed
// with the secret it has then, and nothing more at the old one; each ledger row says where its
// attempt went, without the query string (it may hold a credential).
func TestRetriesFollowURLChange(t *testing.T) {
	s := newStack(t)
	app := s.newApp("moves")
	old := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "down" })
	t.Cleanup(old.Close)
	moved := testenv.NewReceiver(nil)
	t.Cleanup(moved.Close)
	sub := s.subscribe(app.Key, map[string]any{"url": old.URL + "/hook?token=OLDTOKEN", "eventTypes": []string{"m.moved"},
		"retryPolicy": map[string]any{"maxAttempts": 4, "initialIntervalMs": 2000, "backoffCoefficient": 1, "maxIntervalMs": 2000}})

	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "mv-1", "type": "m.moved", "data": map[string]any{"n": 1}}), http.StatusCreated)
	eventually(t, 30*time.Second, "first attempt at the old URL", func() bool { return len(old.Requests()) >= 1 })
	s.must(s.call("PATCH", "/v1/subscriptions/"+sub.ID, app.Key, map[string]any{"url": moved.URL + "/moved?token=NEWTOKEN"}), http.StatusOK)
	rot := s.must(s.call("POST", "/v1/subscriptions/"+sub.ID+"/rotate-secret", app.Key, map[string]any{"graceMs": 0}), http.StatusOK).Data()
	newSecret := rot["secret"].(string)
	atOld := len(old.Requests())

	eventually(t, 30*time.Second, "the retry at the new URL", func() bool { return len(moved.Requests()) >= 1 })
	ds := s.waitDeliveries(app.Key, "mv-1", 1, 30*time.Second)
	if ds[0]["status"] != "succeeded" {
		t.Fatalf("delivery %v", ds[0])
	}
	time.Sleep(3 * time.Second) // a retry still aimed at the old URL would come by now
	if n := len(old.Requests()); n != atOld {
		t.Errorf("%d POSTs at the old URL after the PATCH", n-atOld)
	}
	got := moved.Requests()
	if len(got) != 1 || got[0].Path != "/moved" {
		t.Fatalf("%d POSTs at the new URL (%v)", len(got), got)
	}
	if err := (signature.Verifier{Secret: newSecret}).Verify(got[0].Header, got[0].Body); err != nil {
		t.Errorf("the retry at the new URL is not signed with the current secret: %v", err)
	}
	if err := (signature.Verifier{Secret: sub.Secret}).Verify(got[0].Header, got[0].Body); err == nil {
		t.Errorf("the retry is signed with the secret retired before it (grace 0)")
	}

	d := s.must(s.call("GET", "/v1/deliveries/"+ds[0]["id"].(string), app.Key, nil), http.StatusOK)
	ledger := d.Data()["ledger"].([]any)
	if raw, _ := json.Marshal(ledger); strings.Contains(string(raw), "TOKEN") {
		t.Errorf("the ledger shows a query string: %s", raw)
	}
	if len(ledger) != atOld+1 {
		t.Fatalf("%d ledger rows, want %d", len(ledger), atOld+1)
	}
	var hashes []string
	for i, x := range ledger {
		row := x.(map[string]any)
		want := old.URL + "/hook"
		if i == len(ledger)-1 {
			want = moved.URL + "/moved"
		}
		if row["url"] != want {
			t.Errorf("attempt %v went to %v, ledger says; want %s", row["attempt"], row["url"], want)
		}
		h, _ := row["urlQueryHash"].(string)
		if len(h) != 16 {
			t.Errorf("attempt %v: urlQueryHash %q", row["attempt"], h)
		}
		hashes = append(hashes, h)
	}
	if hashes[0] == hashes[len(hashes)-1] {
		t.Errorf("the old and the new query strings hash alike: %v", hashes)
	}

	// A replay made after another move goes to the URL the subscription has then.
	third := testenv.NewReceiver(nil)
	t.Cleanup(third.Close)
	s.must(s.call("PATCH", "/v1/subscriptions/"+sub.ID, app.Key, map[string]any{"url": third.URL + "/third"}), http.StatusOK)
	rp := s.must(s.call("POST", "/v1/deliveries/"+ds[0]["id"].(string)+"/replay", app.Key, nil), http.StatusAccepted).Data()
	eventually(t, 30*time.Second, "the replay at the third URL", func() bool { return len(third.Requests()) == 1 })
	if err := (signature.Verifier{Secret: newSecret}).Verify(third.Requests()[0].Header, third.Requests()[0].Body); err != nil {
		t.Errorf("the replay is not signed with the current secret: %v", err)
	}
	var replay map[string]any
	eventually(t, 30*time.Second, "the replay's ledger row", func() bool {
		replay = s.delivery(app.Key, rp["id"].(string))
		l, _ := replay["ledger"].([]any)
		return len(l) == 1 && l[0].(map[string]any)["state"] == "completed"
	})
	if replay["url"] != third.URL+"/third" || replay["ledger"].([]any)[0].(map[string]any)["url"] != third.URL+"/third" {
		t.Errorf("replay %v", replay)
	}
	if n := len(moved.Requests()); n != 1 {
		t.Errorf("%d POSTs at the second URL, want 1 (the replay went there too)", n)
	}
}
