package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
)

var (
	buildOnce sync.Once
	hookdBin  string
	buildErr  error
)

// hookdBinary builds cmd/hookd once per test run, for tests that need a process they can kill.
func hookdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookd-bin")
		if err != nil {
			buildErr = err
			return
		}
		hookdBin = filepath.Join(dir, "hookd")
		out, err := exec.Command("go", "build", "-o", hookdBin, "github.com/hookd/hookd/cmd/hookd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return hookdBin
}

// startWorker runs `hookd worker` as a separate process configured like the stack.
func startWorker(t *testing.T, cfg config.Config) *exec.Cmd {
	t.Helper()
	return startHookd(t, cfg, "worker")
}

// startHookd runs `hookd <command>` as a separate process configured like the stack, with extra
// environment variables.
func startHookd(t *testing.T, cfg config.Config, command string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(hookdBinary(t), command)
	cmd.Env = append(os.Environ(),
		"HOOKD_DATABASE_URL="+cfg.DatabaseURL,
		"HOOKD_ENCRYPTION_KEY="+encryptionKey,
		"HOOKD_TEMPORAL_ADDRESS="+cfg.TemporalAddress,
		"HOOKD_TASK_QUEUE="+cfg.TaskQueue,
		"HOOKD_SMTP_ADDR="+cfg.SMTPAddr,
		"HOOKD_ALLOW_PRIVATE_TARGETS=true",
		"HOOKD_LOG_LEVEL=error",
		fmt.Sprintf("HOOKD_RETRY_INITIAL_INTERVAL=%s", cfg.Retry.InitialInterval),
		fmt.Sprintf("HOOKD_RETRY_MAX_INTERVAL=%s", cfg.Retry.MaxInterval),
		fmt.Sprintf("HOOKD_RETRY_MAX_ATTEMPTS=%d", cfg.Retry.MaxAttempts),
		fmt.Sprintf("HOOKD_ATTEMPT_TIMEOUT=%s", cfg.AttemptTimeout),
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// distinctIDs counts requests and distinct webhook-ids a receiver got.
func distinctIDs(r *testenv.Receiver) (requests, distinct int) {
	seen := map[string]bool{}
	for _, q := range r.Requests() {
		seen[q.Header.Get("webhook-id")] = true
	}
	return r.Count(), len(seen)
}

func countRows(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := database.DB.Get(&n, q, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// halfSlowReceivers subscribes four receivers to eventType, every other one answering after delay,
// so that deliveries are in flight whenever a test kills something.
func (s *stack) halfSlowReceivers(app testApp, eventType string, delay time.Duration) []*testenv.Receiver {
	s.t.Helper()
	var receivers []*testenv.Receiver
	for i := 0; i < 4; i++ {
		slow := i%2 == 1
		r := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
			if slow {
				time.Sleep(delay)
			}
			return 200, nil, "ok"
		})
		s.t.Cleanup(r.Close)
		receivers = append(receivers, r)
		s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{eventType}})
	}
	return receivers
}

// kill -9 the worker with 200 deliveries in flight; a new worker finishes every one of them.
func TestWorkerKilledMidRun(t *testing.T) {
	s := startStack(t, false)
	app := s.newApp("crashy")
	receivers := s.halfSlowReceivers(app, "crash", 400*time.Millisecond)
	worker := startWorker(t, s.Cfg)
	const events = 50
	for i := 0; i < events; i++ {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("crash-%02d", i), "type": "crash"}), http.StatusCreated)
	}
	total := func() int {
		n := 0
		for _, r := range receivers {
			n += r.Count()
		}
		return n
	}
	eventually(t, 60*time.Second, "some deliveries under way", func() bool { return total() >= 40 })
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	worker.Wait()
	killedAt := total()
	startWorker(t, s.Cfg)
	eventually(t, 120*time.Second, "every delivery succeeded", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1 AND status = 'succeeded'`, app.ID+"/crash-%") == events*4
	})
	dupes := 0
	for i, r := range receivers {
		reqs, distinct := distinctIDs(r)
		if distinct != events {
			t.Errorf("receiver %d saw %d distinct webhook-ids, want %d", i, distinct, events)
		}
		dupes += reqs - distinct
	}
	if n := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1`, app.ID+"/crash-%"); n != events*4 {
		t.Errorf("%d delivery rows, want %d", n, events*4)
	}
	unsent := assertEveryPOSTInLedger(t, app.ID+"/crash-%", receivers...)
	if unsent > 64 {
		t.Errorf("%d rows without a POST: more than were ever in flight", unsent)
	}
	t.Logf("killed the worker after %d of %d POSTs; %d POSTs repeated a webhook-id (each its own attempt and ledger row); "+
		"%d interrupted rows whose POST never arrived", killedAt, events*4, dupes, unsent)
}

// proxiedStack is a stack that reaches PostgreSQL through a proxy the test can cut.
func proxiedStack(t *testing.T) (*stack, *testenv.Proxy) {
	t.Helper()
	proxy, err := testenv.StartProxy(strings.TrimPrefix(strings.SplitN(strings.TrimPrefix(testenv.AdminURL(), "postgres://"), "/", 2)[0], "postgres@"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	s := newStack(t, func(c *config.Config) {
		c.DatabaseURL = strings.Replace(database.URL, "127.0.0.1:5432", proxy.Addr, 1)
	})
	return s, proxy
}

// PostgreSQL refuses connections for a few seconds: the API answers 503 meanwhile, activities
// retry, and every accepted event is delivered.
func TestDatabaseOutage(t *testing.T) {
	s, proxy := proxiedStack(t)
	app := s.newApp("outage")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"o"}})
	accepted := map[string]bool{}
	post := func(id string) int {
		res := s.call("POST", "/v1/events", app.Key, map[string]any{"id": id, "type": "o"})
		if res.Status == http.StatusCreated || res.Status == http.StatusOK {
			accepted[id] = true
		}
		return res.Status
	}
	for i := 0; i < 10; i++ {
		post(fmt.Sprintf("out-%02d", i))
	}
	proxy.Cut()
	unavailable := 0
	for i := 10; i < 20; i++ {
		res := s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("out-%02d", i), "type": "o"})
		if res.Status == http.StatusServiceUnavailable && res.Header.Get("Content-Type") == "application/problem+json" {
			unavailable++
		} else if res.Status >= 500 {
			t.Errorf("during the outage: %d %s", res.Status, res.Raw)
		}
	}
	if ready := s.call("GET", "/readyz", "", nil); ready.Status != http.StatusServiceUnavailable ||
		ready.Body["postgres"] != "unavailable" || ready.Body["temporal"] != "ok" || strings.Contains(string(ready.Raw), proxy.Addr) {
		t.Errorf("/readyz during the outage: %d %s", ready.Status, ready.Raw)
	}
	time.Sleep(3 * time.Second)
	if err := proxy.Restore(); err != nil {
		t.Fatal(err)
	}
	// Clients retry what was refused.
	for i := 10; i < 20; i++ {
		id := fmt.Sprintf("out-%02d", i)
		eventually(t, 20*time.Second, "retry of "+id, func() bool { st := post(id); return st == 201 || st == 200 })
	}
	eventually(t, 60*time.Second, "all delivered", func() bool {
		_, distinct := distinctIDs(r)
		return distinct == len(accepted)
	})
	if unavailable == 0 {
		t.Error("no 503 during the outage")
	}
	if strings.Contains(s.Logs.String(), "panic") {
		t.Error("a panic was logged")
	}
	reqs, distinct := distinctIDs(r)
	t.Logf("outage: %d posts refused with 503 and retried; %d events delivered with %d POSTs", unavailable, distinct, reqs)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The Temporal server (persisted to sqlite) restarts mid-run; workflows resume where they were,
// and events published while it is down are accepted at once and delivered once it is back.
func TestTemporalRestart(t *testing.T) {
	ctx := context.Background()
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	addr := freePort(t)
	srv, err := testenv.StartTemporalAt(ctx, addr, dbFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	s := newStack(t, func(c *config.Config) { c.TemporalAddress = addr })
	app := s.newApp("restart")
	r := testenv.NewReceiver(func(n int, q *http.Request) (int, http.Header, string) {
		if q.Header.Get("webhook-attempt") == "1" {
			return 500, nil, "first attempts fail"
		}
		return 200, nil, "ok"
	})
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"rs"}, "retryPolicy": map[string]any{"initialIntervalMs": 3000}})
	const events = 20
	for i := 0; i < events; i++ {
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("rs-%02d", i), "type": "rs"}), http.StatusCreated)
	}
	eventually(t, 30*time.Second, "first attempts", func() bool { return r.Count() >= events })
	if err := srv.Stop(); err != nil {
		t.Log(err)
	}
	// With the engine down, publishing still answers at once (the outbox starts the workflows later).
	const whileDown = 5
	for i := 0; i < whileDown; i++ {
		start := time.Now()
		s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": fmt.Sprintf("rs-down-%d", i), "type": "rs"}), http.StatusCreated)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("publish with the engine down took %s", d)
		}
	}
	time.Sleep(time.Second)
	srv, err = testenv.StartTemporalAt(ctx, addr, dbFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "every delivery succeeded after the restart", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1 AND status = 'succeeded'`, app.ID+"/rs-%") == events+whileDown
	})
	_, distinct := distinctIDs(r)
	if distinct != events+whileDown {
		t.Errorf("%d distinct webhook-ids, want %d", distinct, events+whileDown)
	}
	if n := countRows(t, `SELECT count(*) FROM events WHERE app_id = $1 AND started_at IS NULL AND dispatched_at IS NULL`, app.ID); n != 0 {
		t.Errorf("%d events neither marked started nor dispatched", n)
	}
}

// The API died after storing an event and before starting its workflow: the reconciler starts it.
func TestStrandedEventIsReconciled(t *testing.T) {
	s := newStack(t, func(c *config.Config) {
		c.ReconcileInterval, c.ReconcileGrace = 200*time.Millisecond, 500*time.Millisecond
	})
	app := s.newApp("stranded")
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"st"}})
	// Exactly what the API writes before it starts the workflow.
	if _, err := database.DB.Exec(`INSERT INTO events (id, client_id, app_id, type, payload, workflow_id)
		VALUES ($1 || '/stranded-1', 'stranded-1', $1, 'st', '{"n":1}', 'event/' || $1 || '/stranded-1')`, app.ID); err != nil {
		t.Fatal(err)
	}
	ds := s.waitDeliveries(app.Key, "stranded-1", 1, 20*time.Second)
	if ds[0]["status"] != "succeeded" || r.Count() != 1 {
		t.Errorf("delivery %v, %d requests", ds[0], r.Count())
	}
}

// Pending deliveries that no workflow runs are found: one whose workflow never started is started
// and delivered; one whose workflow was terminated is ended with the reason.
func TestOrphanDeliveriesReconciled(t *testing.T) {
	s := newStack(t, func(c *config.Config) {
		c.ReconcileInterval, c.ReconcileDeliveryGrace = 200*time.Millisecond, time.Second
	})
	app := s.newApp("orphans")
	ok := testenv.NewReceiver(nil)
	t.Cleanup(ok.Close)
	down := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) { return 500, nil, "down" })
	t.Cleanup(down.Close)
	okSub := s.subscribe(app.Key, map[string]any{"url": ok.URL, "eventTypes": []string{"orphan"}})
	s.subscribe(app.Key, map[string]any{"url": down.URL, "eventTypes": []string{"orphan"},
		"retryPolicy": map[string]any{"initialIntervalMs": 600000, "maxDurationMs": 3600000}})
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "orphan-1", "type": "orphan"}), http.StatusCreated)
	ds := s.eventDeliveries(app.Key, "orphan-1")
	eventually(t, 20*time.Second, "first attempts", func() bool { return ok.Count() == 1 && down.Count() == 1 })
	key := app.ID + "/orphan-1"

	// A replay row whose workflow never started (the API died right after storing it).
	replayID := "dlv_orphan_replay"
	if _, err := database.DB.Exec(`INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, replay, workflow_id, updated_at)
		VALUES ($1, $2, $3, $4, $5, 1, $6, now() - interval '1 minute')`,
		replayID, key, okSub.ID, app.ID, ok.URL, "delivery/"+key+"/"+okSub.ID+"/replay-1"); err != nil {
		t.Fatal(err)
	}
	// The retrying delivery's workflow terminated by an operator.
	var retrying map[string]any
	eventually(t, 20*time.Second, "a retrying delivery", func() bool {
		ds = s.eventDeliveries(app.Key, "orphan-1")
		for _, d := range ds {
			if d["status"] == "pending" && d["url"] == down.URL {
				retrying = d
			}
		}
		return retrying != nil
	})
	tc := temporalClient(t)
	wf := retrying["workflowId"].(string)
	eventually(t, 20*time.Second, "retry workflow running", func() bool {
		_, err := tc.DescribeWorkflowExecution(context.Background(), wf, "")
		return err == nil
	})
	if err := tc.TerminateWorkflow(context.Background(), wf, "", "test: operator terminated it"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "replay delivered by a restarted workflow", func() bool {
		return s.delivery(app.Key, replayID)["status"] == "succeeded"
	})
	if ok.Count() != 2 {
		t.Errorf("%d POSTs to the replayed receiver, want 2", ok.Count())
	}
	var ended map[string]any
	eventually(t, 30*time.Second, "terminated delivery ended", func() bool {
		ended = s.delivery(app.Key, retrying["id"].(string))
		return ended["status"] != "pending"
	})
	if ended["status"] != "cancelled" || !strings.Contains(ended["lastError"].(string), "terminated") {
		t.Errorf("terminated delivery: %v %v", ended["status"], ended["lastError"])
	}
}
