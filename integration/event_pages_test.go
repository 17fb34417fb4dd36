package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// An event's deliveries are read a page at a time: GET /v1/events/{id} holds the first page and a
// cursor, GET /v1/events/{id}/deliveries the next ones, and the pages together list every
// delivery exactly once; a whole-event replay of an event with more targets than it takes is
// refused before anything is replayed.
func TestEventDeliveriesArePaged(t *testing.T) {
	s := newStack(t)
	app := s.newApp("event pages")
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "paged", "type": "paged"}), http.StatusCreated)
	key := app.ID + "/paged"
	const n = 1200
	// Deliveries as a fan-out to n one-off targets (and a replay of every tenth) would leave them.
	if _, err := database.DB.Exec(`INSERT INTO deliveries (id, event_id, app_id, url, replay, status)
		SELECT 'pg-' || $2 || '-' || i || '-' || r, $1, $2, 'https://r.example/' || lpad(i::text, 5, '0'), r, 'succeeded'
		FROM generate_series(1, $3) i, generate_series(0, 1) r WHERE r = 0 OR i % 10 = 0`, key, app.ID, n); err != nil {
		t.Fatal(err)
	}
	const total = n + n/10
	ev := s.must(s.call("GET", "/v1/events/paged?pageSize=100", app.Key, nil), http.StatusOK).Data()
	first := ev["deliveries"].([]any)
	meta, _ := ev["deliveriesMeta"].(map[string]any)
	if len(first) != 100 || meta["hasNextPage"] != true || meta["nextPage"] == "" {
		t.Fatalf("GET /v1/events/paged?pageSize=100: %d deliveries, meta %v; want the first 100 and a cursor", len(first), meta)
	}
	if d := s.must(s.call("GET", "/v1/events/paged", app.Key, nil), http.StatusOK).Data()["deliveries"].([]any); len(d) != 50 {
		t.Errorf("GET /v1/events/paged: %d deliveries, want a page of 50 by default", len(d))
	}
	seen := map[string]int{}
	for _, d := range first {
		seen[d.(map[string]any)["id"].(string)]++
	}
	pages := 1
	for next, _ := meta["nextPage"].(string); next != ""; pages++ {
		page := s.must(s.call("GET", "/v1/events/paged/deliveries?pageSize=250&page="+url.QueryEscape(next), app.Key, nil), http.StatusOK).Data()
		ds := page["deliveries"].([]any)
		if len(ds) > 250 {
			t.Fatalf("page %d: %d deliveries, want at most 250", pages, len(ds))
		}
		for _, d := range ds {
			seen[d.(map[string]any)["id"].(string)]++
		}
		next, _ = page["meta"].(map[string]any)["nextPage"].(string)
		if pages > total/100 {
			t.Fatal("the pages do not end")
		}
	}
	if len(seen) != total {
		t.Errorf("the pages listed %d deliveries, want %d", len(seen), total)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s listed %d times", id, c)
		}
	}
	// A cursor is checked, and only the publisher reads the event.
	s.must(s.call("GET", "/v1/events/paged/deliveries?page=bm90LWEtY3Vyc29y", app.Key, nil), http.StatusBadRequest)
	s.must(s.call("GET", "/v1/events/paged/deliveries?pageSize=0", app.Key, nil), http.StatusBadRequest)
	other := s.newApp("event pages stranger")
	s.must(s.call("GET", "/v1/events/paged/deliveries", other.Key, nil), http.StatusNotFound)

	// More targets than a whole-event replay takes: refused, nothing replayed.
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "wide", "type": "paged"}), http.StatusCreated)
	if _, err := database.DB.Exec(`INSERT INTO deliveries (id, event_id, app_id, url, status)
		SELECT 'wide-' || $2 || '-' || i, $1, $2, 'https://r.example/' || i, 'failed' FROM generate_series(1, 2001) i`,
		app.ID+"/wide", app.ID); err != nil {
		t.Fatal(err)
	}
	r := s.must(s.call("POST", "/v1/events/wide/replay", app.Key, nil), http.StatusUnprocessableEntity)
	var replays int
	if err := database.DB.Get(&replays, `SELECT count(*) FROM deliveries WHERE event_id = $1 AND replay > 0`, app.ID+"/wide"); err != nil || replays != 0 {
		t.Errorf("a refused replay made %d replays (%v): %s", replays, err, r.Raw)
	}
	t.Logf("%d deliveries in %d pages", total, pages)
}

// A subscriber polls the events delivered to it, from other apps, beside its own; a stranger
// polls none of them.
func TestSubscriberPollsTheEventsDeliveredToIt(t *testing.T) {
	s := newStack(t)
	pub, sub, stranger := s.newApp("poll publisher", "get users"), s.newApp("poll subscriber", "get users"), s.newApp("poll stranger")
	s.must(s.call("POST", "/v1/topics/participant/events", pub.Key, map[string]any{"events": []map[string]any{
		{"name": "polled", "eventType": "polledevent"}}}), http.StatusCreated)
	recv := testenv.NewReceiver(nil)
	t.Cleanup(recv.Close)
	s.subscribe(sub.Key, map[string]any{"url": recv.URL, "appId": pub.ID, "topic": "participant", "eventName": "polled"})
	s.subscribe(sub.Key, map[string]any{"url": recv.URL + "/second", "appId": pub.ID, "topic": "participant", "eventName": "polled"})
	for i := range 3 {
		id := fmt.Sprintf("polled-%d", i)
		s.must(s.call("POST", "/v1/events", pub.Key, map[string]any{"id": id, "type": "polledevent", "topic": "participant"}), http.StatusCreated)
		s.waitDeliveries(pub.Key, id, 2, 30*time.Second)
	}
	s.must(s.call("POST", "/v1/events", sub.Key, map[string]any{"id": "own", "type": "mine"}), http.StatusCreated)
	var got []string
	for cursor := ""; ; {
		page := s.must(s.call("GET", "/v1/events?limit=2&cursor="+url.QueryEscape(cursor), sub.Key, nil), http.StatusOK).Data()
		for _, e := range page["events"].([]any) {
			got = append(got, e.(map[string]any)["id"].(string))
		}
		if page["meta"].(map[string]any)["hasMore"] != true {
			break
		}
		cursor = page["meta"].(map[string]any)["nextCursor"].(string)
	}
	if want := "polled-0 polled-1 polled-2 own"; strings.Join(got, " ") != want {
		t.Errorf("the subscriber polled %v, want %s", got, want)
	}
	if evs := s.must(s.call("GET", "/v1/events", stranger.Key, nil), http.StatusOK).Data()["events"].([]any); len(evs) != 0 {
		t.Errorf("a stranger polled %v", evs)
	}
}
