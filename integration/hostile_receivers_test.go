package integration

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/webhook"
)

// Receivers that answer 200 with bodies and headers PostgreSQL's text and jsonb columns refuse as
// they are (binary, a NUL byte, UTF-8 cut inside a character at the excerpt limit, Latin-1, gzip,
// a 100 KB header) share an event with ordinary ones: every receiver gets exactly one POST per
// event, every delivery succeeds, nobody gets an e-mail, and the ledger has one row per delivery.
// Before the excerpts were sanitised, one such body failed the whole group-committed ledger
// statement: its batch-mates were sent again and the odd receivers ended failed.
func TestHostileReceiverBodiesAreStoredSafely(t *testing.T) {
	s := newStack(t)
	app := s.newApp("hostile bodies")
	const eventType, events = "hostile", 5

	rng := rand.New(rand.NewPCG(1, 2))
	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(rng.UintN(256))
	}
	// "a" then 2-byte characters: the excerpt limit falls inside one.
	split := "a" + strings.Repeat("é", webhook.MaxBodyExcerpt)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("<html><body>Erreur: acc\xe8s refus\xe9\x00</body></html>")) // Latin-1 with a NUL, compressed
	zw.Close()
	var gzRaw bytes.Buffer // gzip bytes sent as an opaque body (no Content-Encoding)
	zw = gzip.NewWriter(&gzRaw)
	zw.Write(bytes.Repeat([]byte("compressed "), 100))
	zw.Close()
	huge := http.Header{"X-Huge": {strings.Repeat("h", 100<<10)}, "Content-Type": {"text/plain; x=\xff\xfe"}}
	for i := range 300 {
		huge.Set(fmt.Sprintf("X-Many-%03d", i), strings.Repeat("m", 100))
	}
	odd := []struct {
		name   string
		header http.Header
		body   string
	}{
		{"binary", http.Header{"Content-Type": {"application/octet-stream"}}, string(binary)},
		{"nul", nil, "ok\x00done"},
		{"split-utf8", http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, split},
		{"latin1", http.Header{"Content-Type": {"text/html; charset=iso-8859-1"}}, "<p>caf\xe9 cr\xe8me br\xfbl\xe9e</p>"},
		{"gzip", http.Header{"Content-Encoding": {"gzip"}, "Content-Type": {"text/html; charset=iso-8859-1"}}, gz.String()},
		{"gzip-raw", http.Header{"Content-Type": {"application/gzip"}}, gzRaw.String()},
		{"huge-header", huge, "ok"},
		// Go's client refuses control bytes in a header (a failed attempt, as a protocol error); bytes
		// of another charset pass.
		{"latin1-header", http.Header{"Location": {"/caf\xe9"}, "Retry-After": {"\xff\xfe"}}, "ok"},
	}
	var receivers []*testenv.Receiver
	names := map[*testenv.Receiver]string{}
	for i := range 10 {
		r := testenv.NewReceiver(nil)
		t.Cleanup(r.Close)
		receivers = append(receivers, r)
		names[r] = fmt.Sprintf("ordinary-%d", i)
	}
	for _, o := range odd {
		r := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 200, o.header, o.body })
		t.Cleanup(r.Close)
		receivers = append(receivers, r)
		names[r] = o.name
	}
	for _, r := range receivers {
		s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{eventType}})
	}
	for i := range events {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("hostile-%d", i), "type": eventType}), http.StatusCreated)
	}
	for i := range events {
		ds := s.waitDeliveries(app.Key, fmt.Sprintf("hostile-%d", i), len(receivers), 60*time.Second)
		for _, d := range ds {
			if d["status"] != "succeeded" {
				t.Errorf("delivery %v to %v: %v (%v)", d["id"], d["url"], d["status"], d["lastError"])
			}
		}
	}
	time.Sleep(time.Second) // a duplicate POST would come within the retry policy's 100 ms backoff
	for _, r := range receivers {
		reqs, distinct := distinctIDs(r)
		if reqs != events || distinct != events {
			t.Errorf("%s receiver: %d POSTs, %d distinct webhook-ids; want %d of each", names[r], reqs, distinct, events)
		}
	}
	assertEveryPOSTInLedger(t, app.ID+"/hostile-%", receivers...)
	var rows []struct {
		URL      string `db:"url"`
		Attempts int    `db:"attempts"`
		Body     string `db:"response_body"`
		Headers  string `db:"response_headers"`
	}
	if err := database.DB.Select(&rows, `SELECT d.url, count(a.*) AS attempts, min(a.response_body) AS response_body,
			coalesce(min(a.response_headers::text), '') AS response_headers
		FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
		WHERE d.event_id LIKE $1 GROUP BY d.id, d.url`, app.ID+"/hostile-%"); err != nil {
		t.Fatal(err)
	}
	if len(rows) != events*len(receivers) {
		t.Errorf("%d deliveries, want %d", len(rows), events*len(receivers))
	}
	stored := map[string]string{}
	for _, r := range rows {
		if r.Attempts != 1 {
			t.Errorf("delivery to %s has %d ledger rows, want 1", r.URL, r.Attempts)
		}
		if !utf8.ValidString(r.Body) || len(r.Body) > webhook.MaxBodyExcerpt || len(r.Headers) > 4096 {
			t.Errorf("delivery to %s stored a body of %d bytes (valid UTF-8: %v) and headers of %d bytes",
				r.URL, len(r.Body), utf8.ValidString(r.Body), len(r.Headers))
		}
		for rc, name := range names {
			if rc.URL == r.URL {
				stored[name] = r.Body
			}
		}
	}
	for name, want := range map[string]string{
		"binary":   "[binary body, 4096 bytes, not shown]",
		"gzip-raw": fmt.Sprintf("[binary body, %d bytes, not shown]", gzRaw.Len()),
		"latin1":   "<p>café crème brûlée</p>",
		"gzip":     "<html><body>Erreur: accès refusé\uFFFD</body></html>",
		"nul":      "ok\uFFFDdone",
	} {
		if stored[name] != want {
			t.Errorf("%s receiver's body stored as %q, want %q", name, stored[name], want)
		}
	}
	if b := stored["split-utf8"]; !strings.HasPrefix(b, "aé") || len(b) < webhook.MaxBodyExcerpt-1 {
		t.Errorf("split UTF-8 body stored as %d bytes: %.20q…", len(b), b)
	}
	if n := len(s.SMTP.Messages()); n != 0 {
		t.Errorf("%d failure e-mails, want none", n)
	}
	if strings.Contains(s.Logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", s.Logs.String())
	}
}
