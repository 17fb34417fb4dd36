package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hookd/hookd/schema"
)

// schemaTopic is the topic the schema phase registers its two event types on.
const schemaTopic = "participant" // one of the topics hookd knows (api: participant, entity, container)

// realisticSchema is a 30-field object schema of the kind publishers register (the one of
// schema's BenchmarkValidate30Fields): strings with lengths, formats and a pattern, bounded
// numbers, an enum, a nested address and an array of line items, no additional properties.
func realisticSchema() string {
	var props, req []string
	for i := range 10 {
		props = append(props, fmt.Sprintf(`"s%d":{"type":"string","minLength":1,"maxLength":200}`, i))
		req = append(req, fmt.Sprintf(`"s%d"`, i))
	}
	for i := range 8 {
		props = append(props, fmt.Sprintf(`"n%d":{"type":"number","minimum":0,"maximum":1000000}`, i))
	}
	props = append(props,
		`"id":{"type":"string","format":"uuid"}`, `"createdAt":{"type":"string","format":"date-time"}`,
		`"email":{"type":"string","format":"email"}`, `"status":{"enum":["new","paid","shipped","cancelled"]}`,
		`"currency":{"type":"string","pattern":"^[A-Z]{3}$"}`, `"paid":{"type":"boolean"}`,
		`"tags":{"type":"array","items":{"type":"string"},"maxItems":20,"uniqueItems":true}`,
		`"address":{"type":"object","required":["city"],"properties":{"street":{"type":"string"},"city":{"type":"string"},"zip":{"type":"string"}}}`,
		`"lines":{"type":"array","items":{"type":"object","required":["sku","qty"],"properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1},"price":{"type":"number"}}}}`,
		`"note":{"type":["string","null"]}`, `"count":{"type":"integer"}`, `"ref":{"type":"string"}`)
	req = append(req, `"id"`, `"status"`)
	return `{"type":"object","required":[` + strings.Join(req, ",") + `],"properties":{` + strings.Join(props, ",") +
		`},"additionalProperties":false}`
}

// realisticData is event i's data, valid against realisticSchema (30 fields, about 800 bytes).
func realisticData(i int) []byte {
	var vals []string
	for k := range 10 {
		vals = append(vals, fmt.Sprintf(`"s%d":"value number %d"`, k, k))
	}
	for k := range 8 {
		vals = append(vals, fmt.Sprintf(`"n%d":%d.5`, k, k*100))
	}
	vals = append(vals, `"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"`, `"createdAt":"2025-01-02T03:04:05Z"`,
		`"email":"ann@example.com"`, `"status":"paid"`, `"currency":"EUR"`, `"paid":true`, `"tags":["a","b","c"]`,
		`"address":{"street":"1 Main St","city":"Springfield","zip":"12345"}`,
		`"lines":[{"sku":"A-1","qty":2,"price":9.5},{"sku":"B-2","qty":1,"price":20}]`,
		`"note":null`, `"count":`+strconv.Itoa(i), `"ref":"r-`+strconv.Itoa(i)+`"`)
	return []byte(`{` + strings.Join(vals, ",") + `}`)
}

// schemaRuns is how many runs of each type the schema phase makes, alternating with and without:
// three pairs, so that the median ratio survives one run another process slowed down.
const schemaRuns = 3

// schemaRun measures what validation at publish costs: one hookd, one app with two registered
// event types on one topic, one with the realistic schema and one without, one subscriber of
// both; events runs of each type alternate (with, without, with, without) at conc publishers,
// each run starting once the previous one's deliveries have arrived, with the same data. Then the
// validation alone, on this goroutine's thread: its CPU per event.
func (b *bench) schemaRun(ctx context.Context, events, conc int) (*SchemaResult, error) {
	tag := "schema-" + b.nonce
	say("\n== schema: %d events x %d runs with a 30-field schema, alternating with %d runs without (after a warm-up of each), %d publishers ==", events, schemaRuns, schemaRuns, conc)
	doc := realisticSchema()
	r := &SchemaResult{Events: events, Concurrency: conc, Fields: 30, PayloadBytes: len(realisticData(0)), LoadAvgStart: loadAvg()}

	var arrived atomic.Int64
	rs, err := startReceivers(1, func(int, string, time.Time) { arrived.Add(1) })
	if err != nil {
		return nil, err
	}
	defer closeReceivers(rs)
	operatorKey := "bench-operator-" + tag
	if b.target != nil {
		operatorKey = b.opt.OperatorKey
	}
	app, _, err := b.startHookd(ctx, "hookd-bench-"+tag, operatorKey)
	if err != nil {
		return nil, err
	}
	defer app.stop()
	api := newAPIClient(app.url(), conc)
	defer api.hc.CloseIdleConnections()
	_, key, err := api.createApp(ctx, operatorKey, "bench "+tag)
	if err != nil {
		return nil, err
	}
	withType, withoutType := "bench.schema."+tag, "bench.plain."+tag
	if _, err := api.call(ctx, "/v1/topics/"+schemaTopic+"/events", key, map[string]any{"events": []any{
		map[string]any{"name": withType, "eventType": withType, "schema": json.RawMessage(doc)},
		map[string]any{"name": withoutType, "eventType": withoutType},
	}}, http.StatusCreated); err != nil {
		return nil, fmt.Errorf("register the event types: %w", err)
	}
	if _, err := api.call(ctx, "/v1/subscriptions", key, map[string]any{"url": hookURL(rs, 0),
		"eventTypes": []string{withType, withoutType}}, http.StatusCreated); err != nil {
		return nil, err
	}
	// The schema is enforced, or the phase would measure nothing: data that breaks it is refused.
	bad := `{"id":"` + tag + `-bad","type":"` + withType + `","data":{"id":"not a uuid"}}`
	if status, raw, err := api.do(ctx, http.MethodPost, "/v1/events", key, []byte(bad)); err != nil || status != http.StatusUnprocessableEntity {
		return nil, fmt.Errorf("schema phase: invalid data answered %d %v (%s), want 422", status, err, strings.TrimSpace(string(raw)))
	}

	var accepted int64
	// Two warm-up runs (a quarter of the events each, not counted) first: the first thousands of
	// publishes of a fresh hookd are slower (connection pools, caches, the runtime's heap), which
	// would count against whichever type went first.
	warm := max(1, events/4)
	for run := range 2 + 2*schemaRuns {
		if ctx.Err() != nil {
			break
		}
		et, with, n := withoutType, false, events
		if run%2 == 0 {
			et, with = withType, true
		}
		if run < 2 {
			n = warm
		}
		var ok, rejected atomic.Int64
		var firstErr sync.Once
		start := time.Now()
		var last atomic.Int64
		inParallel(ctx, conc, n, func(i int) {
			body := []byte(`{"id":"` + tag + "-" + strconv.Itoa(run) + "-" + strconv.Itoa(i) + `","type":"` + et + `","data":` + string(realisticData(i)) + `}`)
			status, raw, err := api.do(ctx, http.MethodPost, "/v1/events", key, body)
			if err == nil && status == http.StatusCreated {
				ok.Add(1)
				storeMax(&last, time.Now().UnixNano())
				return
			}
			rejected.Add(1)
			firstErr.Do(func() {
				if r.FirstError == "" {
					r.FirstError = fmt.Sprintf("%s: %d %v %s", et, status, err, strings.TrimSpace(string(raw)))
				}
			})
		})()
		got := ok.Load()
		rate := 0.0
		if l := last.Load(); got > 0 && l > start.UnixNano() {
			rate = round(float64(got)/time.Duration(l-start.UnixNano()).Seconds(), 1)
		}
		r.Rejected += rejected.Load()
		what := "warm-up"
		switch {
		case run < 2:
		case with:
			r.WithRuns, what = append(r.WithRuns, rate), "run"
		default:
			r.WithoutRuns, what = append(r.WithoutRuns, rate), "run"
		}
		say("schema: %s %s schema: %d accepted in %.2fs = %.0f events/s, %d rejected", what, map[bool]string{true: "with", false: "without"}[with],
			got, time.Since(start).Seconds(), rate, rejected.Load())
		// Quiet before the next run: this run's deliveries arrive first.
		accepted += got
		deadline := time.Now().Add(time.Duration(b.opt.Wait * float64(time.Second)))
		for arrived.Load() < accepted && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	r.Missing = accepted - arrived.Load()
	r.WithPerSec, r.WithoutPerSec = round(median(r.WithRuns), 1), round(median(r.WithoutRuns), 1)
	// The ratio is the median of each pair's (a run with, the run without right after it), so a
	// machine whose load drifts during the phase weighs on both sides of each ratio alike.
	var pairs []float64
	for i := range min(len(r.WithRuns), len(r.WithoutRuns)) {
		if r.WithoutRuns[i] > 0 {
			pairs = append(pairs, r.WithRuns[i]/r.WithoutRuns[i])
		}
	}
	r.Ratio = round(median(pairs), 3)

	// The validation alone, as the API runs it (parse and validate the raw data).
	s, err := schema.Compile([]byte(doc))
	if err != nil {
		return r, fmt.Errorf("compile the schema: %w", err)
	}
	r.ValidateCPUMicros, r.ValidateWallMicros, err = validateCost(s, max(events, 2000))
	if err != nil {
		return r, err
	}
	r.LoadAvgEnd = loadAvg()
	say("schema: with %.0f events/s, without %.0f events/s (median of %d runs each) -> ratio %.3f; validation %.1f µs CPU (%.1f µs wall) per event; load %s -> %s",
		r.WithPerSec, r.WithoutPerSec, schemaRuns, r.Ratio, r.ValidateCPUMicros, r.ValidateWallMicros, r.LoadAvgStart, r.LoadAvgEnd)
	if r.Rejected > 0 || r.Missing > 0 {
		return r, fmt.Errorf("schema: %d publishes rejected (first: %s), %d deliveries missing", r.Rejected, r.FirstError, r.Missing)
	}
	return r, nil
}

// rusageThread is Linux's RUSAGE_THREAD (the syscall package does not name it).
const rusageThread = 1

// validateCost validates n events' data (realisticData) against s on one locked OS thread and
// returns the thread's CPU (user + system) and the wall time per event, in µs. The thread's CPU
// does not count the time other processes take the core, which the wall time does.
func validateCost(s *schema.Schema, n int) (cpuMicros, wallMicros float64, err error) {
	data := make([][]byte, n)
	for i := range data {
		data[i] = realisticData(i)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	cpuErr := syscall.Getrusage(rusageThread, &before)
	start := time.Now()
	for _, d := range data {
		v, err := s.Validate(d)
		if err != nil || v != nil {
			return 0, 0, fmt.Errorf("validate the bench's data: %v %v", v, err)
		}
	}
	wall := time.Since(start)
	if cpuErr == nil {
		cpuErr = syscall.Getrusage(rusageThread, &after)
	}
	wallMicros = round(float64(wall.Microseconds())/float64(n), 1)
	if cpuErr != nil {
		return 0, wallMicros, nil // no per-thread CPU here: the wall time alone
	}
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	return round(float64(cpu.Microseconds())/float64(n), 1), wallMicros, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
