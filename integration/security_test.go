package integration

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/internal/testenv"
)

// historyText is a workflow's whole history as JSON.
func historyText(t *testing.T, c client.Client, workflowID string) string {
	t.Helper()
	var b strings.Builder
	it := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		j, _ := protojson.Marshal(e)
		b.Write(j)
	}
	return b.String()
}

// Secrets and keys appear in no log line, no Temporal history and no response after creation.
func TestSecretsStayOutOfHistoryLogsAndResponses(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.LogLevel = slog.LevelDebug })
	app := s.newApp("secretive")
	r := testenv.NewReceiver(testenv.Statuses(500, 200)) // the retry path runs too
	t.Cleanup(r.Close)
	const callbackKey = "very-secret-callback-key-42"
	sub := s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"sec"}, "callbackKey": callbackKey,
		"retryPolicy": map[string]any{"initialIntervalMs": 100}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "sec-1", "type": "sec", "data": map[string]any{"x": 1}}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "sec-1", 1, 20*time.Second)
	if ds[0]["status"] != "succeeded" {
		t.Fatalf("delivery %v", ds[0])
	}
	c := temporalClient(t)
	histories := historyText(t, c, "event/"+app.ID+"/sec-1") + historyText(t, c, "delivery/"+app.ID+"/sec-1/"+sub.ID)
	if !strings.Contains(histories, "DeliveryWorkflow") {
		t.Fatal("history of the retry workflow not read")
	}
	responses := ""
	for _, p := range []string{"/v1/subscriptions/" + sub.ID, "/v1/subscriptions", "/v1/events/sec-1", "/v1/deliveries/" + ds[0]["id"].(string), "/v1/apps"} {
		responses += string(s.must(s.call("GET", p, app.Key, nil), http.StatusOK).Raw)
	}
	logs := s.Logs.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Fatal("debug logs not captured")
	}
	for name, secret := range map[string]string{"subscription secret": sub.Secret, "app secret": app.Secret, "API key": app.Key,
		"callback key": callbackKey, "operator key": operatorKey} {
		for where, text := range map[string]string{"Temporal history": histories, "logs": logs, "API responses": responses} {
			if strings.Contains(text, secret) {
				t.Errorf("%s found in %s", name, where)
			}
		}
	}
}

// Limits refuse oversized or unbounded input with a clear 4xx.
func TestLimits(t *testing.T) {
	s := newStack(t)
	app := s.newApp("limits")
	big := strings.Repeat("x", 300<<10)
	types := make([]string, 51)
	for i := range types {
		types[i] = "t" + strings.Repeat("x", i%5) + string(rune('a'+i%26))
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		detail             string
	}{
		{"payload over 256 KiB", "POST", "/v1/events", map[string]any{"type": "x", "data": map[string]any{"blob": big}}, 413, "larger than"},
		{"long URL", "POST", "/v1/subscriptions", map[string]any{"url": "http://127.0.0.1/" + strings.Repeat("a", 2100), "eventTypes": []string{"x"}}, 400, "longer than 2048"},
		{"51 event types", "POST", "/v1/subscriptions", map[string]any{"url": "http://127.0.0.1:9/x", "eventTypes": types}, 400, "at most 50"},
		{"page size", "GET", "/v1/subscriptions?pageSize=501", nil, 400, "pageSize"},
		{"unknown field", "POST", "/v1/subscriptions", map[string]any{"url": "http://127.0.0.1:9/x", "eventTypes": []string{"x"}, "sekret": 1}, 400, "unknown field"},
		{"NUL in data", "POST", "/v1/events", `{"type":"x","data":{"a":"\u0000"}}`, 400, "invalid data"},
	}
	for _, c := range cases {
		r := s.call(c.method, c.path, app.Key, c.body)
		if r.Status != c.status || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Raw)
			continue
		}
		if d, _ := r.Body["detail"].(string); !strings.Contains(d, c.detail) {
			t.Errorf("%s: detail %q lacks %q", c.name, d, c.detail)
		}
	}
}

// With private targets not allowed, internal callback URLs are refused at registration.
func TestSSRFGuardAtRegistration(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.AllowPrivate = false })
	app := s.newApp("ssrf")
	for u, why := range map[string]string{
		"http://127.0.0.1:8080/admin":             "loopback",
		"http://localhost/x":                      "loopback",
		"http://10.0.0.5/hook":                    "private",
		"http://169.254.169.254/latest/meta-data": "link-local",
	} {
		r := s.must(s.call("POST", "/v1/subscriptions", app.Key, map[string]any{"url": u, "eventTypes": []string{"x"}}), http.StatusBadRequest)
		if d := r.Body["detail"].(string); !strings.Contains(d, why) {
			t.Errorf("%s: detail %q lacks %q", u, d, why)
		}
		s.must(s.call("POST", "/v1/callbacks", app.Key, map[string]any{"url": u, "eventType": "x"}), http.StatusBadRequest)
		s.must(s.call("POST", "/v1/events?callbackURL="+u, app.Key, map[string]any{"type": "x"}), http.StatusBadRequest)
	}
}

// A read without a scope finds nothing: forgetting the tenant cannot read another app's rows.
func TestRepositoryScope(t *testing.T) {
	s := newStack(t)
	app, other := s.newApp("scoped"), s.newApp("scoped other")
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "scoped-1", "type": "nobody.listens"}), http.StatusCreated)
	repo := db.NewRepo(database.DB, testKeys)
	key := app.ID + "/scoped-1"
	ctx := context.Background()
	for name, c := range map[string]struct {
		scope db.Scope
		found bool
	}{
		"zero scope": {db.Scope{}, false}, "empty owner": {db.OwnedBy(""), false}, "other app": {db.OwnedBy(other.ID), false},
		"owner": {db.OwnedBy(app.ID), true}, "system": {db.AnyApp(), true},
	} {
		_, err := repo.GetEvent(ctx, c.scope, key)
		if found := err == nil; found != c.found || (!found && !errors.Is(err, db.ErrNotFound)) {
			t.Errorf("%s: found %v (%v), want %v", name, found, err, c.found)
		}
	}
}

// Each app has its own token bucket (shared by its API keys): past it, 429 with Retry-After, then
// success once the bucket refills; another app is not slowed. /metrics needs its token when one is set.
func TestRateLimitAndMetricsToken(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.RateLimit, c.RateBurst, c.MetricsToken = 1, 3, "metrics-secret" })
	noisy, quiet := s.newApp("noisy"), s.newApp("quiet")
	for i := 0; i < 3; i++ {
		s.must(s.call("GET", "/v1/subscriptions", noisy.Key, nil), http.StatusOK)
	}
	r := s.call("GET", "/v1/subscriptions", noisy.Key, nil)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("4th request in a burst of 3: %d %s", r.Status, r.Raw)
	}
	wait, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || wait < 1 || wait > 2 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	s.must(s.call("GET", "/v1/subscriptions", quiet.Key, nil), http.StatusOK)
	time.Sleep(time.Duration(wait) * time.Second)
	s.must(s.call("GET", "/v1/subscriptions", noisy.Key, nil), http.StatusOK)

	if m := s.call("GET", "/metrics", "", nil); m.Status != http.StatusUnauthorized {
		t.Errorf("/metrics without its token: %d", m.Status)
	}
	if m := s.call("GET", "/metrics", "metrics-secret", nil); m.Status != http.StatusOK || !strings.Contains(string(m.Raw), "hookd_") {
		t.Errorf("/metrics with its token: %d", m.Status)
	}
}
