// Package integration tests hookd end to end against a real Temporal dev server, a real PostgreSQL
// database, real HTTP receivers and a real SMTP server, all on loopback.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/keyring"
	"github.com/hookd/hookd/service"
)

const operatorKey = "test-operator-key"

var (
	temporalServer *testenv.Temporal
	database       *testenv.Database
	queueSeq       atomic.Int64
	// encryptionKey is the HOOKD_ENCRYPTION_KEY of every stack and hookd process of the run (they
	// share one database), and testKeys its keyring.
	encryptionKey string
	testKeys      *keyring.Keyring
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	var err error
	temporalServer, err = testenv.SharedTemporal(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer temporalServer.Stop()
	database, err = testenv.NewDatabase(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer database.Drop(ctx)
	if encryptionKey, err = keyring.Generate("test1"); err == nil {
		testKeys, err = keyring.Parse(encryptionKey)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	return m.Run()
}

// stack is hookd (api + worker) running against the shared server and database, on its own task
// queue, with an SMTP server of its own.
type stack struct {
	t    *testing.T
	URL  string
	SMTP *testenv.SMTPServer
	Cfg  config.Config
	Logs *syncBuffer // everything the stack logged
	app  *service.App
	stop func() error // stops the stack before the test ends (a restart); idempotent
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newStack runs api and worker in this process.
func newStack(t *testing.T, tweak ...func(*config.Config)) *stack {
	return startStack(t, true, tweak...)
}

func startStack(t *testing.T, withWorker bool, tweak ...func(*config.Config)) *stack {
	t.Helper()
	return startStackWith(t, withWorker, nil, tweak...)
}

// startStackWith is startStack with options for service.Start (a tracer provider, say).
func startStackWith(t *testing.T, withWorker bool, opts []service.Option, tweak ...func(*config.Config)) *stack {
	t.Helper()
	smtp, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(smtp.Close)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = database.URL
	cfg.TemporalAddress = temporalServer.HostPort
	cfg.TaskQueue = fmt.Sprintf("test-%s-%d", t.Name(), queueSeq.Add(1))
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.OperatorKey = operatorKey
	cfg.SMTPAddr = smtp.Addr
	cfg.AllowPrivate = true // receivers live on loopback
	cfg.Retry = config.RetryDefaults{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2,
		MaxInterval: time.Second, MaxAttempts: 5, MaxDuration: time.Minute}
	cfg.AttemptTimeout = 5 * time.Second
	cfg.LogLevel = slog.LevelWarn
	cfg.EncryptionKeys = testKeys
	for _, f := range tweak {
		f(&cfg)
	}
	logs := &syncBuffer{}
	var logOut io.Writer = io.MultiWriter(logs, testWriter{t})
	if os.Getenv("HOOKD_TEST_LOGS") != "" { // stream logs, e.g. to debug a hang
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))
	app, err := service.Start(context.Background(), cfg, log, true, withWorker, opts...)
	if err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceValue(app.Stop)
	t.Cleanup(func() { stop() })
	return &stack{t: t, URL: app.URL, SMTP: smtp, Cfg: cfg, Logs: logs, app: app, stop: stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// validateExchange, when set, checks every request a test makes and its response (against the
// OpenAPI document).
var validateExchange func(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte)

// response is a decoded API answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Data returns the "data" object.
func (r response) Data() map[string]any {
	d, _ := r.Body["data"].(map[string]any)
	return d
}

// call sends a request with a bearer key; body may be a string (sent as is) or a value (JSON).
func (s *stack) call(method, path, key string, body any) response {
	s.t.Helper()
	r, err := s.try(method, path, key, body)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// try is call that returns a failed request's error instead of failing the test (safe in goroutines).
func (s *stack) try(method, path, key string, body any) (response, error) {
	return s.tryWith(method, path, key, body, nil)
}

// callWith is call with extra request headers.
func (s *stack) callWith(method, path, key string, body any, header http.Header) response {
	s.t.Helper()
	r, err := s.tryWith(method, path, key, body, header)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *stack) tryWith(method, path, key string, body any, header http.Header) (response, error) {
	var reqBody []byte
	switch b := body.(type) {
	case nil:
	case string:
		reqBody = []byte(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		reqBody = j
	}
	var rd io.Reader
	if reqBody != nil {
		rd = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return response{}, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if validateExchange != nil {
		validateExchange(s.t, req, reqBody, resp, raw)
	}
	out := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out, nil
}

// must fails the test unless the response has the status.
func (s *stack) must(r response, status int) response {
	s.t.Helper()
	if r.Status != status {
		s.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

type testApp struct {
	ID     string
	Key    string
	Secret string
}

func (s *stack) newApp(name string, permissions ...string) testApp {
	s.t.Helper()
	if permissions == nil {
		permissions = []string{}
	}
	d := s.must(s.call("POST", "/v1/apps", operatorKey, map[string]any{"name": name, "permissions": permissions,
		"contactEmail": strings.ReplaceAll(name, " ", "-") + "app@example.test"}), http.StatusCreated).Data()
	return testApp{ID: d["id"].(string), Key: d["apiKey"].(string), Secret: d["secret"].(string)}
}

type testSub struct {
	ID     string
	Secret string
}

func (s *stack) subscribe(key string, body map[string]any) testSub {
	s.t.Helper()
	d := s.must(s.call("POST", "/v1/subscriptions", key, body), http.StatusCreated).Data()
	return testSub{ID: d["id"].(string), Secret: d["secret"].(string)}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// delivery fetches a delivery with its ledger.
func (s *stack) delivery(key, id string) map[string]any {
	s.t.Helper()
	return s.must(s.call("GET", "/v1/deliveries/"+id, key, nil), http.StatusOK).Data()
}

// eventDeliveries returns all of an event's deliveries, following its pages.
func (s *stack) eventDeliveries(key, id string) []map[string]any {
	s.t.Helper()
	d := s.must(s.call("GET", "/v1/events/"+id+"?pageSize=500", key, nil), http.StatusOK).Data()
	var out []map[string]any
	for _, x := range d["deliveries"].([]any) {
		out = append(out, x.(map[string]any))
	}
	next, _ := d["deliveriesMeta"].(map[string]any)["nextPage"].(string)
	for next != "" {
		page := s.must(s.call("GET", "/v1/events/"+id+"/deliveries?pageSize=500&page="+url.QueryEscape(next), key, nil), http.StatusOK).Data()
		for _, x := range page["deliveries"].([]any) {
			out = append(out, x.(map[string]any))
		}
		next, _ = page["meta"].(map[string]any)["nextPage"].(string)
	}
	return out
}

// waitDeliveries waits until the event has n deliveries, all finished, and returns them.
func (s *stack) waitDeliveries(key, eventID string, n int, timeout time.Duration) []map[string]any {
	s.t.Helper()
	var ds []map[string]any
	eventually(s.t, timeout, fmt.Sprintf("%d finished deliveries of %s", n, eventID), func() bool {
		ds = s.eventDeliveries(key, eventID)
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d["status"] == "pending" {
				return false
			}
		}
		return true
	})
	return ds
}

// temporalClient is a client of the shared dev server, closed when the test ends.
func temporalClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: temporalServer.HostPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
