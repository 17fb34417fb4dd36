package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// A publish without an id but with an Idempotency-Key whose client hangs up after the insert was
// sent gets no answer (its handler fails, and the key is released); the retry with the key must
// find the event the first request stored, not store a second one: one event, one webhook-id,
// one POST to the receiver, and the retry answered 200 with Idempotent-Replayed.
func TestIdempotencyKeyFindsAnEventWhoseClientHungUp(t *testing.T) {
	s := newStack(t)
	app := s.newApp("idem hangup")
	recv := testenv.NewReceiver(nil)
	t.Cleanup(recv.Close)
	s.subscribe(app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"idem.hangup"}})
	body := map[string]any{"type": "idem.hangup", "data": map[string]any{"n": 1}}
	ctx := context.Background()

	// Hold every insert into events, so that the publish waits in its INSERT when its client leaves.
	lock, err := database.DB.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.ExecContext(ctx, `LOCK TABLE events IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(body)
	rctx, hangUp := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(rctx, "POST", s.URL+"/v1/events", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+app.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "hangup-1")
	sent := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		sent <- err
	}()
	eventually(t, 10*time.Second, "the publish's insert waiting for the lock", func() bool {
		var waiting int
		if err := database.DB.Get(&waiting, `SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted`); err != nil {
			t.Fatal(err)
		}
		return waiting > 0
	})
	hangUp()
	if err := <-sent; err == nil {
		t.Fatal("the publish was answered though its client hung up")
	}
	// The handler sees its client gone and gives up (the key is released); then the insert commits.
	time.Sleep(500 * time.Millisecond)
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	countEvents := func() int {
		var n int
		if err := database.DB.Get(&n, `SELECT count(*) FROM events WHERE app_id = $1`, app.ID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 10*time.Second, "the first publish's insert committed", func() bool { return countEvents() == 1 })
	var retry response
	eventually(t, 10*time.Second, "the retry answered", func() bool {
		retry = s.callWith("POST", "/v1/events", app.Key, body, idemKey("hangup-1"))
		return retry.Status != http.StatusConflict // the first request may still hold the key
	})
	var events []string
	if err := database.DB.Select(&events, `SELECT client_id FROM events WHERE app_id = $1`, app.ID); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("the publish and its retry stored %d events %v, want 1", len(events), events)
	}
	if retry.Status != http.StatusOK || retry.Header.Get("Idempotent-Replayed") != "true" || retry.Data()["id"] != events[0] {
		t.Errorf("retry: %d (replayed %q) %s; want 200 replayed with event %s", retry.Status,
			retry.Header.Get("Idempotent-Replayed"), retry.Raw, events[0])
	}
	// The retry answers the same again (its answer is the one kept for the key).
	again := s.must(s.callWith("POST", "/v1/events", app.Key, body, idemKey("hangup-1")), retry.Status)
	if again.Data()["id"] != events[0] {
		t.Errorf("second retry answered event %v, want %s", again.Data()["id"], events[0])
	}
	eventually(t, 30*time.Second, "the event delivered", func() bool { return recv.Count() >= 1 })
	time.Sleep(time.Second)
	reqs := recv.Requests()
	ids := map[string]bool{}
	for _, r := range reqs {
		ids[r.Header.Get("webhook-id")] = true
	}
	if len(reqs) != 1 || len(ids) != 1 {
		t.Errorf("receiver got %d POSTs with %d webhook-ids, want 1 and 1", len(reqs), len(ids))
	}
}
