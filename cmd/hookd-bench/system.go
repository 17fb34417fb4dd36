package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/service"
)

// scenarioSpec is one system run: Events events to Subs subscribers each, at full speed (Rate 0)
// or at Rate events/s.
type scenarioSpec struct {
	Events, Subs, Concurrency int
	Rate                      float64
	Soak                      bool
}

var scenarioSeq atomic.Int64

func (spec scenarioSpec) mode() string {
	switch {
	case spec.Soak:
		return "soak"
	case spec.Rate > 0:
		return "fixed-rate"
	}
	return "full-speed"
}

// runScenario runs a fresh hookd (API + worker in this process, its own task queue and app) and
// posts the scenario's events through its API.
func (b *bench) runScenario(ctx context.Context, spec scenarioSpec) (*ScenarioResult, error) {
	seq := scenarioSeq.Add(1)
	tag := fmt.Sprintf("s%d-%s", seq, b.nonce)
	res := &ScenarioResult{Name: fmt.Sprintf("%dx%d %s", spec.Events, spec.Subs, spec.mode()), Mode: spec.mode(),
		Events: spec.Events, Subscribers: spec.Subs, Concurrency: spec.Concurrency, TargetRate: round(spec.Rate, 1),
		TaskQueue: "hookd-bench-" + tag}
	if spec.Rate > 0 {
		say("\n== system %s: %d events x %d subscribers at %.1f events/s (%.0f deliveries/s) ==", spec.mode(), spec.Events, spec.Subs, spec.Rate, spec.Rate*float64(spec.Subs))
	} else {
		say("\n== system full speed: %d events x %d subscribers, %d concurrent posters ==", spec.Events, spec.Subs, spec.Concurrency)
	}

	tr := newTracker(spec.Subs)
	rs, err := startReceivers(spec.Subs, tr.arrive)
	if err != nil {
		return nil, err
	}
	defer closeReceivers(rs)

	operatorKey := "bench-operator-" + tag
	if b.target != nil {
		operatorKey = b.opt.OperatorKey
		res.TaskQueue = "" // the running hookd's: its workflows are not told apart from others'
	}
	app, fanOutMode, err := b.startHookd(ctx, res.TaskQueue, operatorKey)
	if err != nil {
		return nil, err
	}
	res.FanOutMode = fanOutMode
	stopped := false
	stopApp := func() {
		if !stopped {
			stopped = true
			if err := app.stop(); err != nil {
				say("stop hookd: %v", err)
			}
		}
	}
	defer stopApp()
	b.mon.watch(app.pids())
	defer b.mon.watch(nil)

	api := newAPIClient(app.url(), spec.Concurrency)
	defer api.hc.CloseIdleConnections()
	appID, key, err := api.createApp(ctx, operatorKey, "bench "+tag)
	if err != nil {
		return nil, err
	}
	eventType := "bench." + tag
	t0 := time.Now()
	if err := b.subscribeAll(ctx, api, appID, key, eventType, rs, spec.Subs, spec.Concurrency); err != nil {
		return nil, err
	}
	res.SubscribeSec = round(time.Since(t0).Seconds(), 2)
	say("%d subscriptions in %.2fs", spec.Subs, res.SubscribeSec)

	// Post.
	var accepted, rejected, lastAnswer, behind, maxLag atomic.Int64
	var firstErr sync.Once
	var answers syncHist
	post := func(i int) {
		id := fmt.Sprintf("%s-%07d", tag, i)
		body := []byte(`{"id":"` + id + `","type":"` + eventType + `","data":` + string(eventData(i)) + `}`)
		t0 := time.Now()
		status, raw, err := api.do(ctx, http.MethodPost, "/v1/events", key, body)
		at := time.Now()
		if err == nil && status == http.StatusCreated {
			tr.answered(id, at)
			accepted.Add(1)
			storeMax(&lastAnswer, at.UnixNano())
			answers.add(at.Sub(t0))
			return
		}
		rejected.Add(1)
		firstErr.Do(func() {
			if err != nil {
				res.FirstError = err.Error()
			} else {
				res.FirstError = fmt.Sprintf("status %d: %s", status, strings.TrimSpace(string(raw)))
			}
		})
	}
	total := int64(spec.Events * spec.Subs)
	rp, ra := newRater(), newRater()
	b.mon.begin("system "+res.Name, func() string {
		return rp.line("posted", accepted.Load()+rejected.Load(), int64(spec.Events)) + "; " + ra.line("arrived", tr.arrived.Load(), total)
	})
	if spec.Soak {
		b.mon.record(tr.arrived.Load)
	}
	xacts0, xerr := b.xacts(ctx)
	start := time.Now()
	var wg sync.WaitGroup
	if spec.Rate <= 0 {
		inParallel(ctx, spec.Concurrency, spec.Events, post)()
	} else {
		sem := make(chan struct{}, spec.Concurrency)
	pace:
		for i := 0; i < spec.Events; i++ {
			due := start.Add(time.Duration(float64(i) / spec.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					break pace
				case <-time.After(d):
				}
			}
			select {
			case <-ctx.Done():
				break pace
			case sem <- struct{}{}:
			}
			if lag := time.Since(due); lag > 50*time.Millisecond {
				behind.Add(1)
				storeMax(&maxLag, int64(lag))
			}
			wg.Add(1)
			go func(i int) {
				defer func() { <-sem; wg.Done() }()
				post(i)
			}(i)
		}
	}
	wg.Wait()
	posted := time.Now()
	res.Accepted, res.Rejected = accepted.Load(), rejected.Load()
	res.BehindSchedule, res.MaxLagMs = behind.Load(), round(float64(maxLag.Load())/float64(time.Millisecond), 1)
	res.ExpectedDeliveries = res.Accepted * int64(spec.Subs)
	if res.Accepted > 0 {
		res.PostSec = time.Unix(0, lastAnswer.Load()).Sub(start).Seconds()
		res.EventsPerSec = float64(res.Accepted) / res.PostSec
	}
	res.APIAnswer = answers.summary()

	// Wait for every delivery, or report what is missing.
	wait := time.Duration(b.opt.Wait * float64(time.Second))
	for tr.arrived.Load() < res.ExpectedDeliveries && ctx.Err() == nil {
		if time.Since(posted) > wait {
			res.TimedOut = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lat, early, _, last, unanswered := tr.snapshot()
	res.Arrived = tr.arrived.Load()
	res.Duplicates = tr.duplicates.Load()
	res.ArrivedWithout201 = unanswered
	res.Missing = max(0, res.ExpectedDeliveries-(res.Arrived-unanswered))
	res.Latency, res.ArrivedBeforeAnswer = lat.summary(), early
	if res.Arrived > 0 {
		res.DeliverySec = last.Sub(start).Seconds()
		res.DeliveriesPerSec = float64(res.Arrived) / res.DeliverySec
		res.EndToEndEventsPerSec = res.DeliveriesPerSec / float64(spec.Subs)
	}
	if res.TimedOut {
		say("TIMEOUT: %d of %d deliveries missing %.0fs after the last post", res.Missing, res.ExpectedDeliveries, b.opt.Wait)
	}

	// Wait for the workflows to close, then count them and sample their histories.
	running := fmt.Sprintf(`TaskQueue = %q AND ExecutionStatus = "Running"`, res.TaskQueue)
	closeBy := time.Now().Add(min(wait, time.Minute))
	for ctx.Err() == nil && b.target == nil {
		n, err := b.countWorkflows(ctx, running)
		if err == nil && n == 0 {
			res.WorkflowsClosedSec = time.Since(start).Seconds()
			break
		}
		if time.Now().After(closeBy) {
			say("note: %d workflows still running on %s", n, res.TaskQueue)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := b.mon.end()
	res.RSS, res.CPU, res.series = st.RSS, st.CPU, st.Series
	if res.Arrived > 0 {
		per := func(sec float64) float64 { return round(sec*1000/float64(res.Arrived), 3) }
		res.CPUPerDelivery = CPUPerDel{Self: per(st.CPU.SelfSec), Hookd: per(st.CPU.HookdSec), Temporal: per(st.CPU.TemporalSec),
			Postgres: per(st.CPU.PostgresSec)}
		// The system's processes: hookd's own when it runs apart (the bench's posters and receivers
		// are not the system's), else this process with hookd in it.
		sys := st.CPU.HookdSec
		if len(app.pids()) == 0 {
			sys = st.CPU.SelfSec
		}
		pg := st.CPU.PostgresSec
		if len(b.pgDBs) > 0 {
			pg = st.CPU.PostgresDBSec
			res.CPUPerDelivery.PostgresDB = per(pg)
		}
		res.CPUPerDelivery.System = per(sys + st.CPU.TemporalSec + pg)
	}
	res.Timings = timings(app.gather())
	if res.Accepted > 0 && b.target == nil { // a running stack's counters hold everything since it started
		res.RequestsPerEvent = map[string]float64{}
		for _, t := range res.Timings {
			if t.Name != "temporal_request_latency_seconds" {
				continue
			}
			for _, l := range strings.Split(t.Labels, ",") {
				if op, ok := strings.CutPrefix(l, "operation="); ok {
					res.RequestsPerEvent[op] += round(float64(t.Count)/float64(res.Accepted), 3)
				}
			}
		}
	}
	if n, err := b.countWorkflows(ctx, fmt.Sprintf("TaskQueue = %q", res.TaskQueue)); err == nil && b.target == nil {
		res.Workflows = n
		if res.Accepted > 0 {
			res.WorkflowsPerEvent = float64(n) / float64(res.Accepted)
		}
	}
	stopApp()
	// hookd's connections are closed now, so their backends have reported their statistics.
	if xacts1, err := b.xacts(ctx); err == nil && xerr == nil && res.Accepted > 0 {
		res.SQLPerEvent = round(float64(xacts1-xacts0)/float64(res.Accepted), 2)
	}
	if b.target == nil {
		res.History = b.sampleHistories(ctx, appID, tag, spec)
	}

	say("%s: %d/%d accepted in %.2fs = %.0f events/s; %d/%d deliveries by %.2fs = %.0f deliveries/s (%.1f events/s end to end); answer->arrival p50 %.1f ms, p95 %.1f ms, p99 %.1f ms; %.1f SQL statements/event",
		res.Name, res.Accepted, spec.Events, res.PostSec, res.EventsPerSec, res.Arrived, res.ExpectedDeliveries, res.DeliverySec,
		res.DeliveriesPerSec, res.EndToEndEventsPerSec, res.Latency.P50Ms, res.Latency.P95Ms, res.Latency.P99Ms, res.SQLPerEvent)
	if res.History != nil {
		h := res.History
		say("  temporal (fan-out %s): %.1f workflows/event; per event workflow %.1f history events in %.2f runs, %.1f KB, largest event %d B (%s); per delivery %.3g history events, %.3g activities + %.3g local activities",
			res.FanOutMode, res.WorkflowsPerEvent, h.EventsPerWorkflow, h.RunsPerWorkflow, h.BytesPerWorkflow/1024, h.MaxEventBytes, h.MaxEventType,
			h.EventsPerDelivery, h.ActivitiesPerDelivery, h.LocalPerDelivery)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.Missing > 0 || res.Rejected > 0 {
		return res, fmt.Errorf("%s: %d rejected posts (first: %s), %d deliveries missing", res.Name, res.Rejected, res.FirstError, res.Missing)
	}
	return res, nil
}

// xacts counts the transactions of the bench's database so far (statistics as last reported).
// startHookd starts hookd (in this process, or as processes with -processes) on its own task
// queue against the bench's server and database. fanOutMode is local or activity.
func (b *bench) startHookd(ctx context.Context, queue, operatorKey string) (app system, fanOutMode string, err error) {
	if b.target != nil {
		return b.target, "the target's", nil
	}
	cfg, err := config.Load()
	if err != nil {
		return nil, "", err
	}
	cfg.DatabaseURL = b.db.URL
	cfg.TemporalAddress = b.temporal.HostPort
	cfg.TemporalNamespace = "default"
	cfg.TaskQueue = queue
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.OperatorKey = operatorKey
	cfg.SMTPAddr = "127.0.0.1:1" // nothing should fail; a failure e-mail would not go anywhere
	cfg.AllowPrivate = true      // receivers live on loopback
	cfg.SearchAttributes = true  // the dev server has hookd's attributes
	cfg.LogLevel = b.svcLevel
	if cfg.EncryptionKeys == nil {
		cfg.EncryptionKeys = b.keys
	}
	fanOutMode = "activity"
	if cfg.LocalFanOut {
		fanOutMode = "local"
	}
	if b.hookdBin != "" {
		app, err = startProcesses(ctx, b.hookdBin, cfg, b.keySpec, b.opt.Shape, os.Stderr)
	} else {
		var a *service.App
		if a, err = service.Start(ctx, cfg, b.svcLog, true, true); err == nil {
			app = inProcess{a}
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("start hookd: %w", err)
	}
	return app, fanOutMode, nil
}

func (b *bench) xacts(ctx context.Context) (int64, error) {
	if b.statsDB == nil {
		return 0, fmt.Errorf("no database to count transactions in")
	}
	time.Sleep(1100 * time.Millisecond) // backends report at most once a second while busy
	var n int64
	err := b.statsDB.GetContext(ctx, &n, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`)
	return n, err
}

// sampleHistories counts the history of evenly spread event workflows.
func (b *bench) sampleHistories(ctx context.Context, appID, tag string, spec scenarioSpec) *HistoryStats {
	n := min(b.opt.HistorySample, spec.Events)
	if n <= 0 {
		return nil
	}
	hs := &HistoryStats{}
	var runs, events, bytes, acts, locals, children int
	for k := range n {
		i := k * spec.Events / n
		id := delivery.EventWorkflowID(delivery.EventKey(appID, fmt.Sprintf("%s-%07d", tag, i)))
		h, err := b.history(ctx, id)
		if err != nil {
			say("note: history of %s: %v", id, err)
		}
		if err != nil || h.events == 0 {
			continue
		}
		if hs.Example == nil {
			hs.Example = h.types
		}
		if h.maxEventBytes > hs.MaxEventBytes {
			hs.MaxEventBytes, hs.MaxEventType = h.maxEventBytes, h.maxEventType
		}
		hs.Sampled++
		runs, events, bytes = runs+h.runs, events+h.events, bytes+h.bytes
		acts, locals, children = acts+h.activities, locals+h.localActivities, children+h.children
	}
	if hs.Sampled == 0 {
		return nil
	}
	deliveries := float64(hs.Sampled * spec.Subs)
	hs.RunsPerWorkflow = round(float64(runs)/float64(hs.Sampled), 2)
	hs.EventsPerWorkflow = round(float64(events)/float64(hs.Sampled), 2)
	hs.EventsPerDelivery = round(float64(events)/deliveries, 3)
	hs.BytesPerWorkflow = round(float64(bytes)/float64(hs.Sampled), 0)
	hs.ActivitiesPerDelivery = round(float64(acts)/deliveries, 3)
	hs.LocalPerDelivery = round(float64(locals)/deliveries, 3)
	hs.ChildWorkflowsPerEvent = round(float64(children)/float64(hs.Sampled), 3)
	return hs
}

// apiClient calls hookd's HTTP API the way the integration tests do.
type apiClient struct {
	base string
	hc   *http.Client
}

func newAPIClient(base string, conc int) *apiClient {
	return &apiClient{base: base, hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConns: conc * 2, MaxIdleConnsPerHost: conc * 2, IdleConnTimeout: 90 * time.Second,
	}}}
}

func (a *apiClient) do(ctx context.Context, method, path, key string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (a *apiClient) call(ctx context.Context, path, key string, body any, want int) (map[string]any, error) {
	j, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	status, raw, err := a.do(ctx, http.MethodPost, path, key, j)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	if status != want {
		return nil, fmt.Errorf("POST %s: status %d, want %d: %s", path, status, want, raw)
	}
	var out struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	return out.Data, nil
}

// createApp creates a publishing app with the operator key and returns its id and API key.
func (a *apiClient) createApp(ctx context.Context, operatorKey, name string) (id, key string, err error) {
	d, err := a.call(ctx, "/v1/apps", operatorKey, map[string]any{"name": name, "permissions": []string{},
		"contactEmail": "bench@example.test"}, http.StatusCreated)
	if err != nil {
		return "", "", err
	}
	id, _ = d["id"].(string)
	key, _ = d["apiKey"].(string)
	if key == "" || id == "" {
		return "", "", fmt.Errorf("create app: no id or apiKey in %v", d)
	}
	return id, key, nil
}

// apiSubscribeMax is the most subscriptions a scenario creates through the API: 64 at a time it
// makes about 1,200 a second on 2 cores, so 50,000 would take most of a minute. More are inserted
// directly.
const apiSubscribeMax = 1000

// subscribeAll gives each subscriber a subscription to the app's events of eventType: through the
// API, conc calls at a time, or in one statement beyond apiSubscribeMax.
func (b *bench) subscribeAll(ctx context.Context, api *apiClient, appID, key, eventType string, rs []*receiver, subs, conc int) error {
	if subs > apiSubscribeMax && b.target == nil {
		return b.insertSubscriptions(ctx, appID, eventType, rs, subs)
	}
	// The first alone: a new key's first requests look it up in the database, and each lookup in
	// flight holds a token of the address's failed-authentication budget (api.lookupKey), so
	// conc of them at once are answered 429. Once one has succeeded the key is cached.
	if err := api.subscribe(ctx, key, hookURL(rs, 0), eventType); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inParallel(ctx, conc, subs-1, func(i int) {
		if err := api.subscribe(ctx, key, hookURL(rs, i+1), eventType); err != nil {
			cancel(err)
		}
	})()
	return context.Cause(ctx)
}

// insertSubscriptions stores the subscriptions in one statement with the columns the API's create
// sets (db.Repo.CreateSubscription): an id of the same form, the app as owner and publisher, the
// URL, a whsec_ secret, the one event type; the rest (no filter, no retry policy, active) are the
// columns' defaults, as for a subscription created without them.
func (b *bench) insertSubscriptions(ctx context.Context, appID, eventType string, rs []*receiver, subs int) error {
	ids, urls := make([]string, subs), make([]string, subs)
	for i := range subs {
		ids[i], urls[i] = "sub_"+uuid.NewString(), hookURL(rs, i)
	}
	// md5 is 32 hex digits, which are base64 too: a valid secret of 24 bytes, like the API's.
	_, err := b.db.DB.ExecContext(ctx, `INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, event_types)
		SELECT id, $3, $3, url, 'whsec_' || md5(id), ARRAY[$4::text] FROM unnest($1::text[], $2::text[]) AS t(id, url)`,
		pq.Array(ids), pq.Array(urls), appID, eventType)
	if err != nil {
		return fmt.Errorf("insert %d subscriptions: %w", subs, err)
	}
	return nil
}

// subscribe subscribes url to the app's own events of one type.
func (a *apiClient) subscribe(ctx context.Context, key, url, eventType string) error {
	_, err := a.call(ctx, "/v1/subscriptions", key, map[string]any{"url": url, "eventTypes": []string{eventType}}, http.StatusCreated)
	return err
}

// soak runs the fixed rate until opt.Soak deliveries, sampling RSS every second.
func (b *bench) soak(ctx context.Context, rate float64) (*SoakResult, error) {
	subs := b.opt.SoakSubs
	if rate <= 0 {
		return nil, fmt.Errorf("no rate for the soak: no full-speed run to halve and no -fixed-rate")
	}
	events := (b.opt.Soak + subs - 1) / subs
	sc, err := b.runScenario(ctx, scenarioSpec{Events: events, Subs: subs, Concurrency: b.opt.Concurrency, Rate: rate, Soak: true})
	if sc == nil {
		return nil, err
	}
	s := &SoakResult{Deliveries: int64(events * subs), Rate: round(rate, 1), Scenario: sc, Series: sc.series}
	s.summarize()
	say("soak: RSS start %.0f MB, after warm-up %.0f MB, last %.0f MB, max %.0f MB: drift %+.1f%% (flat within ±10%%: %v); temporal %.0f -> %.0f MB (max %.0f)",
		s.SelfStartMB, s.SelfWarmMB, s.SelfLastMB, s.SelfMaxMB, s.SelfDriftPct, s.Flat, s.TemporalWarmMB, s.TemporalLastMB, s.TemporalMaxMB)
	return s, err
}

func (s *SoakResult) summarize() {
	s.ProcessDescription = "self = hookd API + worker + bench receivers and posters in one process; temporal = the dev server"
	if len(s.Series) == 0 {
		return
	}
	first, last := s.Series[0], s.Series[len(s.Series)-1]
	warm := last
	for _, p := range s.Series {
		if p.Deliveries >= s.Deliveries/10 {
			warm = p
			break
		}
	}
	s.SelfStartMB, s.SelfWarmMB, s.SelfLastMB = first.SelfMB, warm.SelfMB, last.SelfMB
	s.TemporalWarmMB, s.TemporalLastMB = warm.TemporalMB, last.TemporalMB
	for _, p := range s.Series {
		s.SelfMaxMB = max(s.SelfMaxMB, p.SelfMB)
		s.TemporalMaxMB = max(s.TemporalMaxMB, p.TemporalMB)
	}
	if warm.SelfMB > 0 {
		s.SelfDriftPct = round((last.SelfMB-warm.SelfMB)/warm.SelfMB*100, 1)
		s.Flat = s.SelfDriftPct >= -10 && s.SelfDriftPct <= 10
	}
	if warm.TemporalMB > 0 {
		s.TemporalDriftPct = round((last.TemporalMB-warm.TemporalMB)/warm.TemporalMB*100, 1)
	}
	if warm.HookdMB > 0 {
		s.ProcessDescription = "self = the bench's receivers and posters; hookd = its api and worker processes; temporal = the server"
		s.HookdWarmMB, s.HookdLastMB = warm.HookdMB, last.HookdMB
		for _, p := range s.Series {
			s.HookdMaxMB = max(s.HookdMaxMB, p.HookdMB)
		}
		s.HookdDriftPct = round((last.HookdMB-warm.HookdMB)/warm.HookdMB*100, 1)
		s.Flat = s.Flat && s.HookdDriftPct >= -10 && s.HookdDriftPct <= 10
	}
}

// bestScenario is the full-speed run with the most subscribers per event.
func bestScenario(scs []*ScenarioResult) *ScenarioResult {
	var best *ScenarioResult
	for _, s := range scs {
		if s.Mode != "full-speed" || s.Arrived == 0 {
			continue
		}
		if best == nil || s.Subscribers > best.Subscribers {
			best = s
		}
	}
	return best
}
