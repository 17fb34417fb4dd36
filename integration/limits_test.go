package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/service"
)

// mustProblem fails the test unless r is a problem+json answer with the status.
func mustProblem(t *testing.T, r response, status int, what string) {
	t.Helper()
	if r.Status != status || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s: %d %s %s, want %d problem+json", what, r.Status, r.Header.Get("Content-Type"), r.Raw, status)
	}
}

// retryAfter is a 429's Retry-After in seconds; it fails the test unless it is a positive integer.
func retryAfter(t *testing.T, r response) int {
	t.Helper()
	s, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || s < 1 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	return s
}

// The limits the README's configuration table documents hold when set as a deployment sets them,
// in the environment: HOOKD_RATE_LIMIT=1 and HOOKD_RATE_BURST=1 refuse the second immediate
// request; HOOKD_METRICS_TOKEN guards /metrics of the API and of a worker-only process.
func TestDocumentedLimitsFromTheEnvironment(t *testing.T) {
	t.Setenv("HOOKD_RATE_LIMIT", "1")
	t.Setenv("HOOKD_RATE_BURST", "1")
	t.Setenv("HOOKD_METRICS_TOKEN", "metrics-secret")
	s := newStack(t)
	app := s.newApp("env limited")
	s.must(s.call("GET", "/v1/subscriptions", app.Key, nil), http.StatusOK)
	r := s.call("GET", "/v1/subscriptions", app.Key, nil)
	mustProblem(t, r, http.StatusTooManyRequests, "second immediate request at 1/s, burst 1")
	if wait := retryAfter(t, r); wait > 1 {
		t.Errorf("Retry-After %d s at 1 request/s", wait)
	}

	get := func(url, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && !strings.Contains(string(b), "hookd_") {
			t.Errorf("%s: 200 without hookd's metrics", url)
		}
		return resp.StatusCode
	}
	check := func(url string) {
		t.Helper()
		for token, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, "metrics-secret": http.StatusOK} {
			if got := get(url, token); got != want {
				t.Errorf("%s with token %q: %d, want %d", url, token, got, want)
			}
		}
	}
	check(s.URL + "/metrics")

	cfg := s.Cfg
	cfg.MetricsAddr = "127.0.0.1:0"
	w, err := service.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), false, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	check(w.MetricsURL)
}

// An app has at most maxActiveKeys active API keys (revoked ones do not count), and all its keys
// share one rate budget: minting keys does not multiply it.
func TestAPIKeysAreCappedAndShareTheAppsBudget(t *testing.T) {
	s := newStack(t, func(c *config.Config) { c.RateLimit, c.RateBurst = 1, 1 })
	created := s.must(s.call("POST", "/v1/apps", operatorKey, map[string]any{"name": "many keys"}), http.StatusCreated).Data()
	appID, first := created["id"].(string), created["apiKey"].(string)
	var ids []string
	for i := 1; i < 20; i++ { // the app's first key and 19 more
		k := s.must(s.call("POST", "/v1/apps/"+appID+"/keys", operatorKey, nil), http.StatusCreated).Data()
		ids = append(ids, k["id"].(string))
	}
	r := s.call("POST", "/v1/apps/"+appID+"/keys", operatorKey, nil)
	mustProblem(t, r, http.StatusConflict, "a 21st active key")
	if !strings.Contains(string(r.Raw), "20") {
		t.Errorf("the refusal does not say the cap: %s", r.Raw)
	}
	s.must(s.call("DELETE", "/v1/apps/"+appID+"/keys/"+ids[0], operatorKey, nil), http.StatusOK)
	second := s.must(s.call("POST", "/v1/apps/"+appID+"/keys", operatorKey, nil), http.StatusCreated).Data()["apiKey"].(string)

	// One request per second for the app, whichever key makes it.
	s.must(s.call("GET", "/v1/subscriptions", first, nil), http.StatusOK)
	r = s.call("GET", "/v1/subscriptions", second, nil)
	mustProblem(t, r, http.StatusTooManyRequests, "another key of the same app, at once")
	retryAfter(t, r)
	other := s.newApp("other app")
	s.must(s.call("GET", "/v1/subscriptions", other.Key, nil), http.StatusOK) // not slowed
}

// Failed authentications are limited per client address: a flood of invalid keys gets 429 after
// a burst, while a key that works keeps working.
func TestFailedAuthenticationsAreLimited(t *testing.T) {
	s := newStack(t)
	app := s.newApp("good client")
	s.must(s.call("GET", "/v1/subscriptions", app.Key, nil), http.StatusOK)
	unauthorized, limited := 0, 0
	var first response
	for i := range 100 {
		r := s.call("GET", "/v1/subscriptions", fmt.Sprintf("hk_guess%03d", i), nil)
		switch r.Status {
		case http.StatusUnauthorized:
			unauthorized++
		case http.StatusTooManyRequests:
			if limited == 0 {
				first = r
			}
			limited++
		default:
			t.Fatalf("invalid key: %d %s", r.Status, r.Raw)
		}
	}
	t.Logf("100 invalid keys from one address: %d answered 401, %d 429", unauthorized, limited)
	if limited == 0 || unauthorized > 30 {
		t.Fatalf("100 invalid keys from one address: %d answered 401, %d 429", unauthorized, limited)
	}
	mustProblem(t, first, http.StatusTooManyRequests, "invalid keys past the burst")
	retryAfter(t, first)
	s.must(s.call("GET", "/v1/subscriptions", app.Key, nil), http.StatusOK)
}
