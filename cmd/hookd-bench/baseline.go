package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/worker"
)

// HTTPResult is the plain-HTTP baseline.
type HTTPResult struct {
	Requests       int     `json:"requests"`
	Receivers      int     `json:"receivers"`
	Listeners      int     `json:"listeners"` // servers the receivers' URLs share (receiver.go)
	Concurrency    int     `json:"concurrency"`
	OK             int64   `json:"ok"`
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"firstError,omitempty"`
	Arrived        int64   `json:"arrived"`
	DurationSec    float64 `json:"durationSec"` // first send to last arrival
	RequestsPerSec float64 `json:"requestsPerSec"`
	RoundTrip      Latency `json:"roundTrip"` // client send to response read
	BodyBytes      int     `json:"bodyBytes"`
	RSS            RSS     `json:"rss"`
	CPU            CPU     `json:"cpu"`
}

// webhookBody renders a body shaped like hookd's delivery message.
func webhookBody(id, eventType string, i int, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "eventType": eventType, "appId": "app:bench",
		"data":      json.RawMessage(eventData(i)),
		"createdAt": at.UTC().Format(time.RFC3339Nano), "deliveryId": "dlv_" + strconv.Itoa(i), "retryCount": 0,
	})
	return b
}

// eventData is the data of every event the bench publishes.
func eventData(i int) []byte {
	return []byte(`{"orderId":` + strconv.Itoa(i) + `,"total":"42.00","currency":"EUR","customer":{"id":"cus_` + strconv.Itoa(i%977) +
		`","tier":"gold"},"items":[{"sku":"sku-1","qty":2},{"sku":"sku-7","qty":1}],"note":"hookd bench"}`)
}

// httpBaseline POSTs signed payloads straight to loopback receivers with a plain Go client at the
// system phase's concurrency.
func (b *bench) httpBaseline(ctx context.Context) (*HTTPResult, error) {
	n, subs, conc := b.opt.HTTPRequests, b.opt.HTTPReceivers, b.opt.Concurrency
	say("\n== HTTP baseline: %d signed POSTs to %d loopback receivers, %d concurrent ==", n, subs, conc)
	var arrived atomic.Int64
	var lastArrival atomic.Int64
	rs, err := startReceivers(subs, func(_ int, _ string, at time.Time) {
		arrived.Add(1)
		storeMax(&lastArrival, at.UnixNano())
	})
	if err != nil {
		return nil, err
	}
	defer closeReceivers(rs)
	secret, err := signature.NewSecret()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conc * (len(rs) + 1), MaxIdleConnsPerHost: conc, IdleConnTimeout: 90 * time.Second,
	}}
	defer hc.CloseIdleConnections()

	res := &HTTPResult{Requests: n, Receivers: subs, Listeners: len(rs), Concurrency: conc}
	var ok, errs atomic.Int64
	var firstErr sync.Once
	var rt syncHist
	r := newRater()
	b.mon.begin("http baseline", func() string { return r.line("arrived", arrived.Load(), int64(n)) })
	start := time.Now()
	inParallel(ctx, conc, n, func(i int) {
		id := "http-" + b.nonce + "-" + strconv.Itoa(i)
		now := time.Now()
		body := webhookBody(id, "bench.http", i, now)
		if i == 0 {
			res.BodyBytes = len(body)
		}
		sig, err := signature.Header([]string{secret}, id, now, body)
		if err != nil {
			errs.Add(1)
			firstErr.Do(func() { res.FirstError = err.Error() })
			return
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hookURL(rs, i%subs), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "hookd-bench/1")
		req.Header.Set(signature.HeaderID, id)
		req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(signature.HeaderSignature, sig)
		req.Header.Set("webhook-attempt", "1")
		resp, err := hc.Do(req)
		if err != nil {
			errs.Add(1)
			firstErr.Do(func() { res.FirstError = err.Error() })
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		rt.add(time.Since(now))
		if resp.StatusCode == http.StatusOK {
			ok.Add(1)
		} else {
			errs.Add(1)
			firstErr.Do(func() { res.FirstError = "status " + resp.Status })
		}
	})()
	st := b.mon.end()
	res.RSS, res.CPU = st.RSS, st.CPU
	res.OK, res.Errors, res.Arrived = ok.Load(), errs.Load(), arrived.Load()
	end := time.Unix(0, lastArrival.Load())
	if res.Arrived > 0 {
		res.DurationSec = end.Sub(start).Seconds()
		res.RequestsPerSec = float64(res.Arrived) / res.DurationSec
	}
	res.RoundTrip = rt.summary()
	say("HTTP baseline: %d arrived in %.2fs = %.0f requests/s (round trip p50 %.2f ms, p99 %.2f ms), %d errors",
		res.Arrived, res.DurationSec, res.RequestsPerSec, res.RoundTrip.P50Ms, res.RoundTrip.P99Ms, res.Errors)
	return res, ctx.Err()
}

// EngineResult is the plain-Temporal baseline.
type EngineResult struct {
	Shape           string  `json:"shape"` // shapeActivity or shapeLocal
	Workflows       int     `json:"workflows"`
	Concurrency     int     `json:"concurrency"`
	TaskQueue       string  `json:"taskQueue"`
	WorkerOptions   string  `json:"workerOptions"`
	Started         int64   `json:"started"`
	StartErrors     int64   `json:"startErrors"`
	FirstError      string  `json:"firstError,omitempty"`
	StartSec        float64 `json:"startSec"` // first start call to last start answer
	StartsPerSec    float64 `json:"startsPerSec"`
	StartLatency    Latency `json:"startLatency"`
	Completed       int64   `json:"completed"`
	NotCompleted    int64   `json:"notCompleted"`
	CompleteSec     float64 `json:"completeSec"` // first start call to the last workflow's close time
	CompletedPerSec float64 `json:"completedPerSec"`
	HistoryEvents   float64 `json:"historyEventsPerWorkflow"`
	RSS             RSS     `json:"rss"`
	CPU             CPU     `json:"cpu"`
}

const (
	benchWorkflowName      = "HookdBenchTrivialWorkflow"
	benchLocalWorkflowName = "HookdBenchLocalActivityWorkflow"
	benchActivityName      = "HookdBenchTrivialActivity"
)

// Engine baseline shapes.
const (
	shapeActivity = "activity" // one regular activity, started normally
	shapeLocal    = "local"    // hookd's event workflow shape: one local activity, started eagerly
)

// benchWorkflow runs one trivial activity.
func benchWorkflow(ctx workflow.Context, i int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var out int
	err := workflow.ExecuteActivity(ctx, benchActivityName, i).Get(ctx, &out)
	return out, err
}

// benchLocalWorkflow has the shape of hookd's event workflow: one local activity.
func benchLocalWorkflow(ctx workflow.Context, i int) (int, error) {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var out int
	err := workflow.ExecuteLocalActivity(ctx, benchActivity, i).Get(ctx, &out)
	return out, err
}

func benchActivity(_ context.Context, i int) (int, error) { return i + 1, nil }

// engineBaseline starts trivial workflows of a shape (one activity, or hookd's: one local activity
// started eagerly) as fast as a bounded pool of goroutines can, while a worker built by worker.New
// (hookd's options) completes them.
func (b *bench) engineBaseline(ctx context.Context, shape string) (*EngineResult, error) {
	n, conc := b.opt.EngineWorkflows, b.opt.EngineConcurrency
	q := "hookd-bench-engine-" + shape + "-" + b.nonce
	name, eager := benchWorkflowName, b.opt.EngineEager
	if shape == shapeLocal {
		name, eager = benchLocalWorkflowName, true
	}
	say("\n== engine baseline (%s): %d workflows, %d concurrent starters, eager %v, worker with hookd's options ==", shape, n, conc, eager)
	w := worker.New(b.tc, q, &activities.Activities{}, engine.New(b.tc, config.Config{TaskQueue: q}))
	w.RegisterWorkflowWithOptions(benchWorkflow, workflow.RegisterOptions{Name: benchWorkflowName})
	w.RegisterWorkflowWithOptions(benchLocalWorkflow, workflow.RegisterOptions{Name: benchLocalWorkflowName})
	w.RegisterActivityWithOptions(benchActivity, activity.RegisterOptions{Name: benchActivityName})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()

	res := &EngineResult{Shape: shape, Workflows: n, Concurrency: conc, TaskQueue: q,
		WorkerOptions: "worker.New from worker/worker.go (hookd's worker options)"}
	var started, errs atomic.Int64
	var lastStart atomic.Int64
	var completed atomic.Int64
	var firstErr sync.Once
	var lat syncHist
	rs, rc := newRater(), newRater()
	startsDone := make(chan struct{})
	b.mon.begin("engine baseline", func() string {
		return rs.line("started", started.Load(), int64(n)) + "; " + rc.line("completed", completed.Load(), int64(n))
	})
	begin := time.Now()
	waitStarts := inParallel(ctx, conc, n, func(i int) {
		t0 := time.Now()
		_, err := b.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: fmt.Sprintf("bench-engine-%s-%s-%d", shape, b.nonce, i), TaskQueue: q, EnableEagerStart: eager,
		}, name, i)
		if err != nil {
			errs.Add(1)
			firstErr.Do(func() { res.FirstError = err.Error() })
			return
		}
		now := time.Now()
		lat.add(now.Sub(t0))
		started.Add(1)
		storeMax(&lastStart, now.UnixNano())
	})
	go func() { waitStarts(); close(startsDone) }()

	// Count completions from visibility while starting, and until all are done.
	query := fmt.Sprintf(`TaskQueue = %q AND ExecutionStatus = "Completed"`, q)
	deadline := time.Time{}
	for {
		select {
		case <-startsDone:
			if deadline.IsZero() {
				deadline = time.Now().Add(time.Duration(b.opt.Wait * float64(time.Second)))
			}
		default:
		}
		c, err := b.countWorkflows(ctx, query)
		if err == nil {
			completed.Store(c)
		}
		if !deadline.IsZero() && (completed.Load() >= started.Load() || time.Now().After(deadline)) {
			break
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := b.mon.end()
	res.RSS, res.CPU = st.RSS, st.CPU
	res.Started, res.StartErrors = started.Load(), errs.Load()
	res.StartLatency = lat.summary()
	if res.Started > 0 {
		res.StartSec = time.Unix(0, lastStart.Load()).Sub(begin).Seconds()
		res.StartsPerSec = float64(res.Started) / res.StartSec
	}
	// The close time of each workflow, from visibility.
	var lastClose time.Time
	var nDone int64
	err := b.listWorkflows(ctx, fmt.Sprintf("TaskQueue = %q", q), func(status enumspb.WorkflowExecutionStatus, _ string, closed time.Time) {
		if status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			nDone++
			if closed.After(lastClose) {
				lastClose = closed
			}
		}
	})
	if err != nil {
		return res, fmt.Errorf("list workflows: %w", err)
	}
	res.Completed, res.NotCompleted = nDone, res.Started-nDone
	if nDone > 0 {
		res.CompleteSec = lastClose.Sub(begin).Seconds()
		res.CompletedPerSec = float64(nDone) / res.CompleteSec
	}
	// History events of a sample.
	var total, sampled int
	for i := 0; i < n && sampled < 5; i += max(1, n/5) {
		h, err := b.history(ctx, fmt.Sprintf("bench-engine-%s-%s-%d", shape, b.nonce, i))
		if err != nil {
			continue
		}
		total += h.events
		sampled++
	}
	if sampled > 0 {
		res.HistoryEvents = float64(total) / float64(sampled)
	}
	say("engine baseline (%s): %d started in %.2fs = %.0f starts/s (start p50 %.1f ms, p99 %.1f ms); %d completed by %.2fs = %.0f workflows/s; %.0f history events each",
		shape, res.Started, res.StartSec, res.StartsPerSec, res.StartLatency.P50Ms, res.StartLatency.P99Ms, res.Completed, res.CompleteSec,
		res.CompletedPerSec, res.HistoryEvents)
	if res.NotCompleted > 0 {
		return res, fmt.Errorf("%d of %d workflows did not complete within %.0fs", res.NotCompleted, res.Started, b.opt.Wait)
	}
	return res, ctx.Err()
}

// countWorkflows counts workflows matching a visibility query.
func (b *bench) countWorkflows(ctx context.Context, query string) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := b.tc.CountWorkflow(cctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query})
	if err != nil {
		return 0, err
	}
	return r.GetCount(), nil
}

// listWorkflows pages through the workflows matching a visibility query.
func (b *bench) listWorkflows(ctx context.Context, query string, each func(enumspb.WorkflowExecutionStatus, string, time.Time)) error {
	var token []byte
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := b.tc.ListWorkflow(cctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: "default", Query: query, PageSize: 1000, NextPageToken: token,
		})
		cancel()
		if err != nil {
			return err
		}
		for _, e := range r.GetExecutions() {
			var closed time.Time
			if e.GetCloseTime() != nil {
				closed = e.GetCloseTime().AsTime()
			}
			each(e.GetStatus(), e.GetType().GetName(), closed)
		}
		token = r.GetNextPageToken()
		if len(token) == 0 {
			return nil
		}
	}
}

// historyCount is what one workflow's history holds, over all its runs.
type historyCount struct {
	runs, events, activities, localActivities, children int
	// Sizes are proto.Size of each event: its encoded size, as the server stores and limits it.
	bytes, maxEventBytes int
	maxEventType         string
	types                []string // the event types in order, the first maxExampleTypes
}

// maxExampleTypes bounds the event types kept as an example: a large fan-out's history has
// thousands.
const maxExampleTypes = 200

// history reads every run of a workflow, the last one first: a fan-out too long for one run
// continues as new, and the event costs all of its runs.
func (b *bench) history(ctx context.Context, workflowID string) (historyCount, error) {
	var h historyCount
	runID := ""
	for {
		types, prev, err := b.runHistory(ctx, workflowID, runID, &h)
		if err != nil {
			return h, err
		}
		h.runs++
		h.types = append(types, h.types...)
		if prev == "" {
			h.types = h.types[:min(len(h.types), maxExampleTypes)]
			return h, nil
		}
		runID = prev
	}
}

// runHistory adds one run's history to h and returns its event types and the run it continued
// ("" for the first run).
func (b *bench) runHistory(ctx context.Context, workflowID, runID string, h *historyCount) (types []string, prev string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	it := b.tc.GetWorkflowHistory(cctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, "", err
		}
		h.events++
		size := proto.Size(e)
		h.bytes += size
		if size > h.maxEventBytes {
			h.maxEventBytes, h.maxEventType = size, e.GetEventType().String()
		}
		if len(types) < maxExampleTypes {
			types = append(types, e.GetEventType().String())
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			prev = e.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			h.activities++
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			h.children++
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if e.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
				h.localActivities++
			}
		}
	}
	return types, prev, nil
}

// storeMax keeps the largest value stored.
func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// inParallel calls fn(i) for every i in [0, n) from conc goroutines, each taking the next index,
// until ctx ends. It returns at once; the returned func waits for the goroutines.
func inParallel(ctx context.Context, conc, n int, fn func(i int)) (wait func()) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	return wg.Wait
}
