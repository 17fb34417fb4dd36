package integration

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/hookd/hookd/internal/testenv"
)

// The chaos soak (`make soak`; skipped unless HOOKD_SOAK is a duration, e.g. HOOKD_SOAK=5m).
//
// It runs the production topology exactly as `make cluster` does (scripts/cluster.sh with its
// supervisor: a real Temporal server on PostgreSQL, two APIs and two workers in the shape
// HOOKD_CLUSTER_SHAPE names), on ports 20000 above make cluster's, with PostgreSQL reached
// through a TCP proxy this test can cut. For HOOKD_SOAK it publishes events through both APIs at
// HOOKD_SOAK_RATE events/s (default 3) to HOOKD_SOAK_SUBS subscribers (default 8: every fourth
// slow, every fourth failing the first attempt of a third of the events), while it injects one
// fault every 8 to 20 s (after the previous one's recovery), in rounds that each hold every kind
// once (HOOKD_SOAK_FAULTS=kill-api,pg-outage,... to choose): kill -9 of an API, of a
// worker and of the Temporal server (each must come back under its supervisor while the other
// APIs keep answering every publish), SIGSTOP/SIGCONT of a hookd process and of the Temporal
// server, and a PostgreSQL outage (the proxy cut for 3 to 10 s, under the Temporal server and
// hookd alike; HOOKD_SOAK_PG=restart restarts the machine's PostgreSQL with pg_ctlcluster instead,
// for a machine no one else is testing on). HOOKD_SOAK_SEED repeats a run's faults.
//
// Then it checks: every event stored (every acknowledged one and any a killed API stored before
// it could answer) delivered to every subscriber, no delivery pending or failed, every POST a
// receiver got in the ledger and every answered ledger row a POST a receiver got, and no POST
// after a 2xx for the same delivery unless the ledger shows that attempt interrupted and a worker
// was killed or paused just then (the outcome died with the worker). A 2xx resent around a
// PostgreSQL outage alone fails the test.
func TestSoak(t *testing.T) {
	spec := os.Getenv("HOOKD_SOAK")
	if spec == "" {
		t.Skip("HOOKD_SOAK not set (make soak runs it: HOOKD_SOAK=5m)")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil || duration <= 0 {
		t.Fatalf("HOOKD_SOAK=%q: want a duration such as 5m", spec)
	}
	rate := soakEnvFloat(t, "HOOKD_SOAK_RATE", 3)
	nSubs := int(soakEnvFloat(t, "HOOKD_SOAK_SUBS", 8))
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HOOKD_SOAK_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("HOOKD_SOAK_SEED=%q: %v", s, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	shape := os.Getenv("HOOKD_CLUSTER_SHAPE")
	if shape == "" {
		shape = "separate" // scripts/cluster.sh's default
	}
	pgRestart := os.Getenv("HOOKD_SOAK_PG") == "restart"
	t.Logf("soak: %s at %.1f events/s x %d subscribers, shape %s, PostgreSQL outages by %s, seed %d",
		duration, rate, nSubs, shape, map[bool]string{true: "pg_ctlcluster restart", false: "proxy cut"}[pgRestart], seed)

	c := startSoakCluster(t, pgRestart)
	s := &stack{t: t, URL: c.apis[0]}
	app := s.newApp("soak")

	// Receivers: what each answered to which attempt, and when.
	type answer struct {
		id      string // webhook-id: the event
		attempt int
		status  int
		at      time.Time
	}
	var amu sync.Mutex
	answers := make([][]answer, nSubs)
	receivers := make([]*testenv.Receiver, nSubs)
	subIndex := map[string]int{}
	for i := range receivers {
		receivers[i] = testenv.NewReceiver(func(_ int, q *http.Request) (int, http.Header, string) {
			id := q.Header.Get("webhook-id")
			attempt, _ := strconv.Atoi(q.Header.Get("webhook-attempt"))
			status := 200
			switch i % 4 {
			case 1:
				time.Sleep(300 * time.Millisecond)
			case 3:
				if attempt == 1 && id[len(id)-1]%3 == 0 {
					status = 500
				}
			}
			amu.Lock()
			answers[i] = append(answers[i], answer{id, attempt, status, time.Now()})
			amu.Unlock()
			return status, nil, "soak"
		})
		t.Cleanup(receivers[i].Close)
		sub := s.subscribe(app.Key, map[string]any{"url": receivers[i].URL, "eventTypes": []string{"soak"},
			"retryPolicy": map[string]any{"initialIntervalMs": 500, "maxIntervalMs": 4000, "maxAttempts": 50, "maxDurationMs": 1800000}})
		subIndex[sub.ID] = i
	}

	// Load: one event per tick, alternating between the APIs; a publish that fails is tried again on
	// the next API every 250 ms for up to two minutes (as a client would), with the same id.
	type try struct {
		api        int
		start, end time.Time
		ok         bool
	}
	var (
		lmu      sync.Mutex
		tries    []try
		acked    = map[string]bool{}
		refused  []string
		skipped  int
		inFlight = make(chan struct{}, 256)
		load     sync.WaitGroup
	)
	clients := make([]*stack, len(c.apis))
	for i, u := range c.apis {
		clients[i] = &stack{t: t, URL: u}
	}
	httpClient := &http.Client{Timeout: 10 * time.Second}
	publish := func(n int) {
		defer load.Done()
		defer func() { <-inFlight }()
		id := fmt.Sprintf("soak-%06d", n)
		deadline := time.Now().Add(2 * time.Minute)
		for k := 0; ; k++ {
			api := (n + k) % len(clients)
			start := time.Now()
			st, err := soakPost(httpClient, clients[api].URL, app.Key, id)
			ok := err == nil && (st == http.StatusCreated || st == http.StatusOK)
			lmu.Lock()
			tries = append(tries, try{api, start, time.Now(), ok})
			if ok {
				acked[id] = true
			}
			lmu.Unlock()
			if ok {
				return
			}
			if err == nil && st >= 400 && st < 500 && st != http.StatusTooManyRequests {
				lmu.Lock()
				refused = append(refused, fmt.Sprintf("%s: %d", id, st))
				lmu.Unlock()
				return
			}
			if time.Now().After(deadline) {
				lmu.Lock()
				refused = append(refused, fmt.Sprintf("%s: gave up (%v, %d)", id, err, st))
				lmu.Unlock()
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	started := time.Now()
	stopLoad := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			select {
			case inFlight <- struct{}{}:
				load.Add(1)
				go publish(n)
			default:
				lmu.Lock()
				skipped++
				lmu.Unlock()
			}
		}
	}()

	// Faults, one at a time, each one's recovery awaited before the next.
	kinds := []string{"kill-api", "kill-worker", "kill-temporal", "stop-hookd", "stop-temporal", "pg-outage"}
	if k := os.Getenv("HOOKD_SOAK_FAULTS"); k != "" {
		kinds = strings.Split(k, ",")
		for _, kind := range kinds {
			if !strings.Contains("kill-api kill-worker kill-temporal stop-hookd stop-temporal pg-outage", kind) {
				t.Fatalf("HOOKD_SOAK_FAULTS: unknown fault %q", kind)
			}
		}
	}
	var deck []string
	var faults []*soakFault
	time.Sleep(15 * time.Second) // load first
	for time.Since(started) < duration-20*time.Second {
		if len(deck) == 0 {
			deck = append(deck, kinds...)
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		kind := deck[0]
		deck = deck[1:]
		f := c.inject(kind, rng)
		faults = append(faults, f)
		t.Logf("fault %d at %s: %s %s (%s); %s", len(faults), f.at.Sub(started).Round(time.Second), f.kind, f.target,
			f.detail, f.outcome())
		if f.err != "" {
			t.Errorf("fault %s %s: %s", f.kind, f.target, f.err)
		}
		time.Sleep(time.Duration(8+rng.IntN(13)) * time.Second)
	}
	if rest := duration - time.Since(started); rest > 0 {
		time.Sleep(rest)
	}
	close(stopLoad)
	load.Wait()
	loadTime := time.Since(started)

	// The APIs that were not hit answered every publish while another process was killed.
	lmu.Lock()
	for _, f := range faults {
		if !strings.HasPrefix(f.kind, "kill-") {
			continue
		}
		failed, total := 0, 0
		for _, tr := range tries {
			if tr.end.Before(f.at) || tr.start.After(f.back) || (f.kind == "kill-api" && c.apis[tr.api] == f.url) {
				continue
			}
			total++
			if !tr.ok {
				failed++
			}
		}
		if failed > 0 {
			t.Errorf("while %s was down (%s), %d of %d publishes to the APIs still up failed", f.target, f.back.Sub(f.at).Round(time.Millisecond), failed, total)
		}
	}
	nAcked, nTries := len(acked), len(tries)
	if len(refused) > 0 {
		t.Errorf("%d events never acknowledged: %v", len(refused), refused[:min(len(refused), 10)])
	}
	lmu.Unlock()

	// Drain: every stored event delivered to every subscriber.
	like := app.ID + "/soak-%"
	stored := countRows(t, `SELECT count(*) FROM events WHERE app_id = $1`, app.ID)
	drainStart := time.Now()
	deadline := drainStart.Add(5 * time.Minute)
	for {
		done := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1 AND status <> 'pending'`, like)
		if done >= stored*nSubs {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s of drain, %d of %d deliveries finished", time.Since(drainStart).Round(time.Second), done, stored*nSubs)
			break
		}
		time.Sleep(time.Second)
	}
	drain := time.Since(drainStart)
	time.Sleep(3 * time.Second) // a resend would come within the retry policy's first interval

	if stored < nAcked {
		t.Errorf("%d events acknowledged, only %d stored", nAcked, stored)
	}
	rowsTotal := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1`, like)
	succeeded := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1 AND status = 'succeeded'`, like)
	pending := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1 AND status = 'pending'`, like)
	if rowsTotal != stored*nSubs || succeeded != stored*nSubs || pending != 0 {
		t.Errorf("%d events stored: %d delivery rows, %d succeeded, %d pending; want %d succeeded", stored, rowsTotal, succeeded, pending, stored*nSubs)
		var odd []struct {
			Event  string `db:"event_id"`
			Status string `db:"status"`
			Error  string `db:"last_error"`
		}
		_ = database.DB.Select(&odd, `SELECT event_id, status, coalesce(last_error, '') AS last_error FROM deliveries
			WHERE event_id LIKE $1 AND status <> 'succeeded' LIMIT 10`, like)
		t.Logf("deliveries not succeeded: %+v", odd)
	}
	var ids []string
	if err := database.DB.Select(&ids, `SELECT id FROM events WHERE app_id = $1`, app.ID); err != nil {
		t.Fatal(err)
	}
	posts := 0
	for i, r := range receivers {
		seen := map[string]bool{}
		for _, q := range r.Requests() {
			seen[q.Header.Get("webhook-id")] = true
		}
		posts += r.Count()
		lost := 0
		for _, id := range ids {
			if !seen[id] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("receiver %d never got %d of the %d stored events", i, lost, len(ids))
		}
	}
	unsent := assertEveryPOSTInLedger(t, like, receivers...)

	// No POST after a 2xx, but for an outcome a worker took with it.
	var ledger []struct {
		Event   string        `db:"event_id"`
		Sub     string        `db:"subscription_id"`
		Attempt int           `db:"attempt"`
		State   string        `db:"state"`
		Status  sql.NullInt64 `db:"response_status"`
	}
	if err := database.DB.Select(&ledger, `SELECT d.event_id, d.subscription_id, a.attempt, a.state, a.response_status
		FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id LIKE $1`, like); err != nil {
		t.Fatal(err)
	}
	type rowKey struct {
		recv    int
		event   string
		attempt int
	}
	state := map[rowKey]string{}
	interruptedRows := 0
	for _, r := range ledger {
		state[rowKey{subIndex[r.Sub], r.Event, r.Attempt}] = r.State
		if r.State == "interrupted" {
			interruptedRows++
		}
	}
	workerFaultNear := func(at time.Time) *soakFault {
		for _, f := range faults {
			if f.hitsWorker(shape) && !f.at.Before(at.Add(-time.Second)) && f.at.Before(at.Add(45*time.Second)) {
				return f
			}
		}
		return nil
	}
	pgFaultNear := func(at time.Time) *soakFault {
		for _, f := range faults {
			if f.kind == "pg-outage" && f.at.Before(at.Add(45*time.Second)) && f.back.After(at.Add(-time.Second)) {
				return f
			}
		}
		return nil
	}
	amu.Lock()
	explained, unexplained, byDB := 0, 0, 0
	var bad []string
	for i, as := range answers {
		byID := map[string][]answer{}
		for _, a := range as {
			byID[a.id] = append(byID[a.id], a)
		}
		for id, list := range byID {
			sort.Slice(list, func(a, b int) bool { return list[a].at.Before(list[b].at) })
			okAt := -1
			for k, a := range list {
				if a.status >= 200 && a.status < 300 {
					okAt = k
					break
				}
			}
			if okAt < 0 || okAt == len(list)-1 {
				continue
			}
			first := list[okAt]
			for _, again := range list[okAt+1:] {
				st := state[rowKey{i, id, first.attempt}]
				wf, pf := workerFaultNear(first.at), pgFaultNear(first.at)
				why := fmt.Sprintf("receiver %d, %s: attempt %d answered %d at %s, ledger %q; attempt %d POSTed at %s",
					i, id, first.attempt, first.status, first.at.Sub(started).Round(time.Millisecond), st, again.attempt, again.at.Sub(started).Round(time.Millisecond))
				switch {
				case st == "interrupted" && wf != nil:
					explained++
					t.Logf("resent after a 2xx, explained by %s %s: %s", wf.kind, wf.target, why)
				case pf != nil:
					byDB++
					bad = append(bad, "during a PostgreSQL outage: "+why)
				default:
					unexplained++
					bad = append(bad, why)
				}
			}
		}
	}
	amu.Unlock()
	if len(bad) > 0 {
		t.Errorf("%d POSTs after a 2xx not explained by a worker's death (%d near a PostgreSQL outage): %s",
			len(bad), byDB, strings.Join(bad[:min(len(bad), 10)], "; "))
	}

	// Everything the cluster started stops with it.
	stopErr := c.stop()
	if stopErr != nil {
		t.Error(stopErr)
	}
	counts := map[string]int{}
	for _, f := range faults {
		counts[f.kind]++
	}
	restarts := c.restarts()
	t.Logf("SOAK RESULT: shape %s; %s of load (%.1f events/s x %d subscribers), %d faults %v, supervisor restarts %v",
		shape, loadTime.Round(time.Second), rate, nSubs, len(faults), counts, restarts)
	t.Logf("SOAK RESULT: %d events acknowledged (%d publish tries, %d ticks skipped), %d stored; %d deliveries, %d succeeded, %d pending; %d POSTs; drained %s after the load",
		nAcked, nTries, skipped, stored, rowsTotal, succeeded, pending, posts, drain.Round(time.Second))
	t.Logf("SOAK RESULT: %d interrupted ledger rows (%d without a POST); POSTs after a 2xx: %d explained by a worker killed or paused, %d near a PostgreSQL outage, %d unexplained",
		interruptedRows, unsent, explained, byDB, unexplained)
}

func soakEnvFloat(t *testing.T, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

func soakPost(c *http.Client, base, key, id string) (int, error) {
	req, err := http.NewRequest("POST", base+"/v1/events", strings.NewReader(fmt.Sprintf(`{"id":%q,"type":"soak","data":{"n":%q}}`, id, id)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// soakCluster is scripts/cluster.sh running in the background.
type soakCluster struct {
	t         *testing.T
	cmd       *exec.Cmd
	done      chan error
	state     string
	apis      []string // base URLs
	workers   []string // metrics URLs
	temporal  string
	proxy     *testenv.Proxy
	pgRestart bool
}

// soakPortOffset moves every port of the soak's cluster away from make cluster's.
const soakPortOffset = 20000

func startSoakCluster(t *testing.T, pgRestart bool) *soakCluster {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, ".soak")
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	pgHostPort := strings.SplitN(strings.TrimPrefix(strings.TrimPrefix(testenv.AdminURL(), "postgres://"), "postgres@"), "/", 2)[0]
	proxy, err := testenv.StartProxy(pgHostPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	pgHost, pgPort, _ := strings.Cut(proxy.Addr, ":")
	const tdb = "hookd_soak_temporal"
	for _, db := range []string{tdb, tdb + "_visibility"} {
		if _, err := database.DB.Exec(`DROP DATABASE IF EXISTS ` + db + ` WITH (FORCE)`); err != nil {
			t.Fatal(err)
		}
	}
	smtp, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(smtp.Close)
	c := &soakCluster{t: t, state: state, proxy: proxy, pgRestart: pgRestart, done: make(chan error, 1),
		temporal: fmt.Sprintf("127.0.0.1:%d", 7233+soakPortOffset)}
	for i := 0; i < 2; i++ {
		c.apis = append(c.apis, fmt.Sprintf("http://127.0.0.1:%d", 8080+soakPortOffset+i))
		c.workers = append(c.workers, fmt.Sprintf("http://127.0.0.1:%d/metrics", 9091+soakPortOffset+i))
	}
	logf, err := os.Create(filepath.Join(state, "cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	c.cmd = exec.Command(filepath.Join(root, "scripts", "cluster.sh"))
	c.cmd.Env = append(os.Environ(),
		"HOOKD_CLUSTER_STATE="+state,
		"HOOKD_CLUSTER_PORT_OFFSET="+strconv.Itoa(soakPortOffset),
		"HOOKD_CLUSTER_EXTRAS=",
		"HOOKD_CLUSTER_APIS=2", "HOOKD_CLUSTER_WORKERS=2",
		"HOOKD_CLUSTER_TEMPORAL_DB="+tdb,
		"HOOKD_TEMPORAL_PG_CONNS=6", // PostgreSQL's max_connections is shared with other tests
		"HOOKD_CLUSTER_BIN="+hookdBinary(t),
		"HOOKD_PG_HOST="+pgHost, "HOOKD_PG_PORT="+pgPort,
		"HOOKD_DATABASE_URL="+strings.Replace(database.URL, pgHostPort, proxy.Addr, 1),
		"HOOKD_ENCRYPTION_KEY="+encryptionKey,
		"HOOKD_OPERATOR_KEY="+operatorKey,
		"HOOKD_SMTP_ADDR="+smtp.Addr,
		"HOOKD_ALLOW_PRIVATE_TARGETS=true",
		"HOOKD_LOG_LEVEL=warn",
		"HOOKD_RETENTION=24h",
		"HOOKD_RECONCILE_INTERVAL=2s", "HOOKD_RECONCILE_GRACE=5s",
		"HOOKD_RESTART_MIN_MS=500", "HOOKD_RESTART_MAX_MS=4000",
	)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { _ = c.stop() })
	deadline := time.Now().Add(6 * time.Minute)
	for _, u := range c.apis {
		for !soakReady(u + "/readyz") {
			select {
			case err := <-c.done:
				c.done <- err
				t.Fatalf("scripts/cluster.sh exited (%v); its output:\n%s", err, c.tail("cluster.log"))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ready after 6 min; its output:\n%s", c.tail("cluster.log"))
			}
			time.Sleep(time.Second)
		}
	}
	t.Logf("cluster up: APIs %v, Temporal %s, state %s", c.apis, c.temporal, state)
	return c
}

func soakReady(u string) bool {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (c *soakCluster) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.state, name))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// pid is the process (group) the supervisor runs as name now.
func (c *soakCluster) pid(name string) int {
	b, err := os.ReadFile(filepath.Join(c.state, name+".pid"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

// stop ends cluster.sh with SIGTERM (as Ctrl-C would) and checks that nothing it ran is left.
func (c *soakCluster) stop() error {
	if c.cmd.Process == nil {
		return nil
	}
	pids := map[string]int{}
	for _, n := range []string{"temporal", "api-1", "api-2", "worker-1", "worker-2"} {
		if p := c.pid(n); p > 0 {
			pids[n] = p
		}
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(2 * time.Minute):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("scripts/cluster.sh did not stop in 2 min")
	}
	c.done <- nil
	var left []string
	for n, p := range pids {
		if syscall.Kill(-p, 0) == nil {
			left = append(left, n)
			_ = syscall.Kill(-p, syscall.SIGKILL)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("left running after cluster.sh stopped: %v", left)
	}
	return nil
}

// restarts counts the supervisor's restarts in cluster.sh's output, by process.
func (c *soakCluster) restarts() map[string]int {
	b, _ := os.ReadFile(filepath.Join(c.state, "cluster.log"))
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cluster: "), " (pid "); ok && strings.Contains(rest, "exited:") {
			out[name]++
		}
	}
	return out
}

// soakFault is one fault the soak injected.
type soakFault struct {
	kind, target, detail string
	url                  string // the API's, for kill-api
	at, back             time.Time
	err                  string
}

func (f *soakFault) outcome() string {
	if f.err != "" {
		return "NOT RECOVERED"
	}
	return "back and serving after " + f.back.Sub(f.at).Round(100*time.Millisecond).String()
}

// hitsWorker: the fault stopped a process that runs a worker.
func (f *soakFault) hitsWorker(shape string) bool {
	switch f.kind {
	case "kill-worker":
		return true
	case "kill-api":
		return shape == "combined"
	case "stop-hookd":
		return strings.HasPrefix(f.target, "worker") || shape == "combined"
	}
	return false
}

// inject makes one fault of the kind and waits until what it hit serves again.
func (c *soakCluster) inject(kind string, rng *rand.Rand) *soakFault {
	f := &soakFault{kind: kind}
	n := 1 + rng.IntN(2)
	var serving func() bool
	switch kind {
	case "kill-api", "kill-worker", "kill-temporal":
		switch kind {
		case "kill-api":
			f.target, f.url = fmt.Sprintf("api-%d", n), c.apis[n-1]
			serving = func() bool { return soakReady(f.url + "/readyz") }
		case "kill-worker":
			f.target = fmt.Sprintf("worker-%d", n)
			u := c.workers[n-1]
			serving = func() bool { return soakReady(u) }
		default:
			f.target = "temporal"
			serving = c.temporalServing
		}
		old := c.pid(f.target)
		f.at = time.Now()
		if old == 0 || syscall.Kill(-old, syscall.SIGKILL) != nil {
			f.err = fmt.Sprintf("no process to kill (pid file says %d)", old)
			f.back = time.Now()
			return f
		}
		f.detail = fmt.Sprintf("kill -9 process group %d", old)
		// The supervisor starts it again (a new pid) and it serves again.
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if p := c.pid(f.target); p != 0 && p != old && syscall.Kill(p, 0) == nil && serving() {
				break
			}
			if time.Now().After(deadline) {
				f.err = "not back after 3 min: " + c.tail(f.target+".log")
				break
			}
		}
	case "stop-hookd", "stop-temporal":
		f.target = "temporal"
		if kind == "stop-hookd" {
			f.target = []string{"api-1", "api-2", "worker-1", "worker-2"}[rng.IntN(4)]
		}
		pause := time.Duration(3+rng.IntN(8)) * time.Second
		p := c.pid(f.target)
		f.detail = fmt.Sprintf("SIGSTOP process group %d for %s", p, pause)
		f.at = time.Now()
		if p == 0 || syscall.Kill(-p, syscall.SIGSTOP) != nil {
			f.err = "no process to stop"
		}
		time.Sleep(pause)
		_ = syscall.Kill(-p, syscall.SIGCONT)
	case "pg-outage":
		f.target = "postgresql"
		f.at = time.Now()
		if c.pgRestart {
			f.detail = "pg_ctlcluster restart"
			out, err := exec.Command("bash", "-c", `pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main restart`).CombinedOutput()
			if err != nil {
				f.err = fmt.Sprintf("pg_ctlcluster: %v: %s", err, out)
			}
		} else {
			d := time.Duration(3+rng.IntN(8)) * time.Second
			f.detail = fmt.Sprintf("proxy cut for %s", d)
			c.proxy.Cut()
			time.Sleep(d)
			if err := c.proxy.Restore(); err != nil {
				f.err = err.Error()
			}
		}
	}
	if f.back.IsZero() {
		f.back = time.Now()
	}
	return f
}

// temporalServing: the Temporal server answers a health check.
func (c *soakCluster) temporalServing() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: c.temporal, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return false
	}
	defer tc.Close()
	_, err = tc.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err == nil
}
