package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/hookd/hookd/workflows"
)

// The product owner's targets. A miss is reported, never turned into a failing exit status.
const (
	targetOverEngine   = 10.0 // deliveries/s at 10 subscribers >= 10 x the 1-activity engine baseline
	targetOverLocal    = 0.9  // events/s end to end at 1 subscriber >= 0.9 x the same-shape engine baseline
	targetP99Ms        = 250  // p99 answer->arrival at the fixed half-peak rate
	targetPublishP99Ms = 50   // publish answer p99 at full speed, whatever the engine's backlog
	targetAccepted     = 1000 // events/s accepted durably at full speed
	targetSQLPerEvent  = 5    // SQL statements per event at 1 subscriber
	targetPGCPUMs      = 1.5  // PostgreSQL CPU ms per event at 1 subscriber
	targetWideRate     = 2000 // deliveries/s of one event to 50,000 subscribers
	targetSubscribers  = 10
	// targetCPUPerDeliveryMs: hookd, the Temporal server and PostgreSQL together, at 10 subscribers.
	targetCPUPerDeliveryMs = 1.0
)

// evaluate checks the targets and computes the ratios.
func evaluate(res *Results) ([]Target, Ratios) {
	var ts []Target
	var rt Ratios
	var httpRate, engDone float64
	if res.HTTPBaseline != nil {
		httpRate = res.HTTPBaseline.RequestsPerSec
	}
	if res.EngineBaseline != nil {
		engDone = res.EngineBaseline.CompletedPerSec
	}
	// The full-speed run at 10 subscribers (else the one with the most).
	var fan *ScenarioResult
	for _, s := range res.Scenarios {
		if s.Mode == "full-speed" && s.Subscribers == targetSubscribers && s.Arrived > 0 {
			fan = s
			break
		}
	}
	if fan == nil {
		fan = bestScenario(res.Scenarios)
	}
	if fan != nil {
		rt.Scenario, rt.DeliveriesPerSec = fan.Name, round(fan.DeliveriesPerSec, 1)
		rt.HTTPBaselineRequestsPerSec, rt.EngineCompletedWorkflowsPerSec = round(httpRate, 1), round(engDone, 1)
		if httpRate > 0 {
			rt.OverHTTPBaseline = round(fan.DeliveriesPerSec/httpRate, 4)
		}
		if engDone > 0 {
			rt.OverEngineCompletedWorkflows = round(fan.DeliveriesPerSec/engDone, 3)
		}
		note := ""
		if fan.Subscribers != targetSubscribers {
			note = fmt.Sprintf(" (no run at %d subscribers; used %d)", targetSubscribers, fan.Subscribers)
		}
		if engDone > 0 {
			b := targetOverEngine * engDone
			ts = append(ts, Target{Name: fmt.Sprintf("deliveries/s at %d subscribers/event >= %.0fx engine completed workflows/s", targetSubscribers, targetOverEngine),
				Measured: round(fan.DeliveriesPerSec, 1), Bound: round(b, 1), Pass: fan.DeliveriesPerSec >= b,
				Detail: fmt.Sprintf("%s: %.0f deliveries/s vs %.0f x %.1f = %.0f%s", fan.Name, fan.DeliveriesPerSec, targetOverEngine, engDone, b, note)})
		}
	}
	if fan != nil && fan.Subscribers == targetSubscribers && fan.CPUPerDelivery.System > 0 {
		c := fan.CPUPerDelivery
		ts = append(ts, Target{Name: fmt.Sprintf("CPU per delivery at %d subscribers/event <= %.1f ms, hookd + Temporal + PostgreSQL together", targetSubscribers, targetCPUPerDeliveryMs),
			Measured: c.System, Bound: targetCPUPerDeliveryMs, Pass: c.System <= targetCPUPerDeliveryMs,
			Detail: fmt.Sprintf("%s: %.2f ms (Temporal %.2f, PostgreSQL %.2f of its databases, %.2f all)", fan.Name, c.System, c.Temporal, c.PostgresDB, c.Postgres)})
	}
	for _, s := range res.Scenarios {
		if s.Mode != "fixed-rate" || s.Latency.Count == 0 {
			continue
		}
		ts = append(ts, Target{Name: fmt.Sprintf("p99 answer->arrival < %d ms at the fixed half-peak rate (%d subscribers)", targetP99Ms, s.Subscribers),
			Measured: s.Latency.P99Ms, Bound: targetP99Ms, Pass: s.Latency.P99Ms < targetP99Ms && s.Missing == 0,
			Detail: fmt.Sprintf("%s at %.1f events/s: p99 %.1f ms (p50 %.1f, p95 %.1f), %d missing", s.Name, s.TargetRate, s.Latency.P99Ms, s.Latency.P50Ms, s.Latency.P95Ms, s.Missing)})
	}
	if sk := res.Soak; sk != nil && sk.Deliveries > 0 {
		detail := fmt.Sprintf("%d deliveries: bench process %+.1f%%", sk.Deliveries, sk.SelfDriftPct)
		if sk.HookdMaxMB > 0 {
			detail += fmt.Sprintf(", hookd's api + worker %.0f -> %.0f MB (%+.1f%%)", sk.HookdWarmMB, sk.HookdLastMB, sk.HookdDriftPct)
		}
		ts = append(ts, Target{Name: "RSS flat (±10% after warm-up) over the soak", Measured: sk.SelfDriftPct, Bound: 10,
			Pass: sk.Flat, Detail: detail})
	}
	var local float64
	if res.EngineLocal != nil {
		local = res.EngineLocal.CompletedPerSec
	}
	for _, s := range res.Scenarios {
		if s.Mode != "full-speed" || s.Accepted == 0 {
			continue
		}
		if s.Subscribers == 1 && s.Events >= minFixedEvents {
			if local > 0 {
				b := targetOverLocal * local
				ts = append(ts, Target{Name: fmt.Sprintf("end-to-end events/s at 1 subscriber >= %.1fx the same-shape engine baseline", targetOverLocal),
					Measured: round(s.EndToEndEventsPerSec, 1), Bound: round(b, 1), Pass: s.EndToEndEventsPerSec >= b,
					Detail: fmt.Sprintf("%s: %.1f events/s vs %.1f x %.1f = %.1f", s.Name, s.EndToEndEventsPerSec, targetOverLocal, local, b)})
			}
			ts = append(ts, Target{Name: fmt.Sprintf("PostgreSQL <= %d statements and <= %.1f ms CPU per event at 1 subscriber", targetSQLPerEvent, targetPGCPUMs),
				Measured: s.SQLPerEvent, Bound: targetSQLPerEvent, Pass: s.SQLPerEvent > 0 && s.SQLPerEvent <= targetSQLPerEvent && s.CPUPerDelivery.Postgres <= targetPGCPUMs,
				Detail: fmt.Sprintf("%s: %.2f statements, %.2f ms CPU per event", s.Name, s.SQLPerEvent, s.CPUPerDelivery.Postgres)})
		}
		if s.Events >= minFixedEvents {
			ts = append(ts, Target{Name: fmt.Sprintf("publish p99 < %d ms and >= %d events/s accepted (%d subscribers, %d publishers)", targetPublishP99Ms, targetAccepted, s.Subscribers, s.Concurrency),
				Measured: s.APIAnswer.P99Ms, Bound: targetPublishP99Ms, Pass: s.APIAnswer.P99Ms < targetPublishP99Ms && s.EventsPerSec >= targetAccepted,
				Detail: fmt.Sprintf("%s: p99 %.1f ms (p50 %.1f), %.0f events/s accepted", s.Name, s.APIAnswer.P99Ms, s.APIAnswer.P50Ms, s.EventsPerSec)})
		}
		if s.Events == 1 && s.Subscribers >= 50000 {
			ts = append(ts, Target{Name: fmt.Sprintf("one event to %d subscribers >= %d deliveries/s", s.Subscribers, targetWideRate),
				Measured: round(s.DeliveriesPerSec, 1), Bound: targetWideRate, Pass: s.DeliveriesPerSec >= targetWideRate,
				Detail: fmt.Sprintf("%s: %.0f deliveries/s", s.Name, s.DeliveriesPerSec)})
		}
	}
	if th := res.Throttle; th != nil && th.LimitedRate > 0 {
		// The limit holds within 10 %, and the unlimited subscriptions of the same events finish
		// in a quarter of the time the limited one needs (they do not queue behind it).
		dev := math.Abs(th.LimitedRate-th.Limit) / th.Limit
		ts = append(ts, Target{Name: fmt.Sprintf("a %.0f deliveries/s limit holds within 10%% while other subscriptions run at full speed", th.Limit),
			Measured: th.LimitedRate, Bound: th.Limit,
			Pass: dev <= 0.10 && th.LimitedMaxInSec <= int(th.Limit)+1 && th.UnlimitedSec < th.LimitedSec/4 && th.Missing == 0,
			Detail: fmt.Sprintf("limited: %.2f deliveries/s (at most %d in a second, last after %.1f s); %d unlimited: %.0f deliveries/s, last after %.1f s",
				th.LimitedRate, th.LimitedMaxInSec, th.LimitedSec, th.Unlimited, th.UnlimitedRate, th.UnlimitedSec)})
	}
	return ts, rt
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func mem(r RSS) string {
	self := fmt.Sprintf("%.0f", r.SelfMaxMB)
	if r.HookdMaxMB > 0 { // -processes: the bench, then hookd's api + worker
		self += fmt.Sprintf("+%.0f", r.HookdMaxMB)
	}
	if r.TemporalMaxMB > 0 {
		return fmt.Sprintf("%s / %.0f", self, r.TemporalMaxMB)
	}
	return self + " / -"
}

// printSummary prints the tables, the targets and, last, the ratios.
func printSummary(w io.Writer, res *Results) {
	fmt.Fprintf(w, "\n================ hookd bench summary ================\n")
	fmt.Fprintf(w, "%s  %d CPU (GOMAXPROCS %d)  %s/%s  Temporal: %s  load at start %s  total %.0fs\n\n",
		res.Timestamp.Format("2006-01-02 15:04:05Z"), res.NumCPU, res.GOMAXPROCS, res.GOOS, res.GOARCH, res.TemporalStore, res.LoadAvgStart, res.TotalSec)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "baseline\tcount\tseconds\trate/s\tp50 ms\tp99 ms\tmax RSS MB self/temporal\tcores self/temporal/pg/other\t")
	if h := res.HTTPBaseline; h != nil {
		fmt.Fprintf(tw, "HTTP POST, %s, c=%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%s\t%s\t\n", receiversOn(h.Receivers, h.Listeners), h.Concurrency, h.Arrived, h.DurationSec,
			h.RequestsPerSec, h.RoundTrip.P50Ms, h.RoundTrip.P99Ms, mem(h.RSS), h.CPU.cores())
	}
	if e := res.EngineBaseline; e != nil {
		fmt.Fprintf(tw, "engine workflow starts, c=%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%s\t%s\t\n", e.Concurrency, e.Started, e.StartSec, e.StartsPerSec,
			e.StartLatency.P50Ms, e.StartLatency.P99Ms, mem(e.RSS), e.CPU.cores())
		fmt.Fprintf(tw, "engine 1-activity workflows completed\t%d\t%.2f\t%.0f\t\t\t\t\t\n", e.Completed, e.CompleteSec, e.CompletedPerSec)
	}
	if e := res.EngineLocal; e != nil {
		fmt.Fprintf(tw, "engine hookd-shape workflows (1 local activity, eager) completed, c=%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%s\t%s\t\n", e.Concurrency,
			e.Completed, e.CompleteSec, e.CompletedPerSec, e.StartLatency.P50Ms, e.StartLatency.P99Ms, mem(e.RSS), e.CPU.cores())
	}
	tw.Flush()
	fmt.Fprintln(w)

	scenarios := res.Scenarios
	if res.Soak != nil && res.Soak.Scenario != nil {
		scenarios = append(scenarios[:len(scenarios):len(scenarios)], res.Soak.Scenario)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system scenario\tevents/s in\tpublish p50/p99 ms\tdeliveries/s\tlast delivery s\te2e events/s\tp50 ms\tp95 ms\tp99 ms\tmissing\tdup\twf/event\thist ev/delivery\tacts/delivery (local)\tmax RSS MB self/temporal\t")
	for _, s := range scenarios {
		name := s.Name
		if s.Mode != "full-speed" {
			name = fmt.Sprintf("%s @%.1f/s", s.Name, s.TargetRate)
		}
		hist, acts := "-", "-"
		if s.History != nil {
			// %.3g: a large fan-out's figures are thousandths.
			hist, acts = fmt.Sprintf("%.3g", s.History.EventsPerDelivery), fmt.Sprintf("%.3g (%.3g)", s.History.ActivitiesPerDelivery, s.History.LocalPerDelivery)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f/%.1f\t%.0f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.2f\t%s\t%s\t%s\t\n", name, s.EventsPerSec, s.APIAnswer.P50Ms, s.APIAnswer.P99Ms, s.DeliveriesPerSec,
			s.DeliverySec, s.EndToEndEventsPerSec, s.Latency.P50Ms, s.Latency.P95Ms, s.Latency.P99Ms, s.Missing, s.Duplicates, s.WorkflowsPerEvent, hist, acts, mem(s.RSS))
	}
	tw.Flush()
	fmt.Fprintln(w, "  events/s in: answered 201 by the API; deliveries/s: receiver arrivals / (first post -> last arrival) = last delivery s; p50-p99: API answer -> receiver arrival")

	printHistories(w, scenarios)
	printRequests(w, scenarios)

	fmt.Fprintln(w, "\nwhere the time goes (CPU over first post -> workflows closed; self is this process with hookd in it, or with -processes this one plus hookd's api and worker; means from hookd's Temporal SDK and hookd metrics)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system scenario\tcores self/temporal/pg/other\tCPU ms/delivery hookd/temporal/pg = all\tSQL stmts/event\tAPI start wf ms\twf task queued ms\tcomplete wf task ms\tFanOut queued ms\tFanOut ran ms\tHTTP attempt ms\tarrived before 201\t")
	for _, s := range scenarios {
		c := s.CPUPerDelivery
		fanOutRan := timing(s.Timings, "temporal_activity_execution_latency_seconds", "activity_type=FanOut")
		if s.FanOutMode == "local" {
			fanOutRan = timing(s.Timings, "temporal_local_activity_execution_latency_seconds", "activity_type=FanOut") + " (local)"
		}
		hookd, pg := c.Hookd, c.Postgres
		if hookd == 0 {
			hookd = c.Self
		}
		if c.PostgresDB > 0 {
			pg = c.PostgresDB
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f/%.2f/%.2f = %.2f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", s.Name, s.CPU.cores(), hookd, c.Temporal, pg, c.System, s.SQLPerEvent,
			timing(s.Timings, "temporal_request_latency_seconds", "operation=StartWorkflowExecution"),
			timing(s.Timings, "temporal_workflow_task_schedule_to_start_latency_seconds", "workflow_type="+workflows.EventWorkflowType),
			timing(s.Timings, "temporal_request_latency_seconds", "operation=RespondWorkflowTaskCompleted"),
			timing(s.Timings, "temporal_activity_schedule_to_start_latency_seconds", "activity_type=FanOut"),
			fanOutRan,
			timing(s.Timings, "hookd_delivery_attempt_duration_seconds", ""), s.ArrivedBeforeAnswer)
	}
	tw.Flush()
	fmt.Fprintln(w, "  cores: average busy cores of this process (API + worker + bench clients/receivers) / Temporal dev server / PostgreSQL / rest of the machine")
	fmt.Fprintln(w, "  CPU ms/delivery: hookd (this process when hookd runs in it; with -processes or -target hookd's own processes, the bench's posters and receivers apart) / Temporal / PostgreSQL (the backends of hookd's database, and of -temporal-dbs; every postgres process in the JSON's postgres) = all three")
	fmt.Fprintln(w, "  queued: schedule-to-start (waiting in a Temporal task queue; none with eager start or a local FanOut); API start wf and complete wf task: gRPC round trips to the server")

	if s := res.Soak; s != nil {
		fmt.Fprintf(w, "\nsoak: %d deliveries at %.1f events/s x %d: RSS self start %.0f, after warm-up %.0f, last %.0f, max %.0f MB -> drift %+.1f%%, flat within ±10%%: %s",
			s.Deliveries, s.Rate, s.Scenario.Subscribers, s.SelfStartMB, s.SelfWarmMB, s.SelfLastMB, s.SelfMaxMB, s.SelfDriftPct, yesNo(s.Flat))
		if s.HookdMaxMB > 0 {
			fmt.Fprintf(w, "; hookd's processes after warm-up %.0f, last %.0f, max %.0f MB -> drift %+.1f%%", s.HookdWarmMB, s.HookdLastMB, s.HookdMaxMB, s.HookdDriftPct)
		}
		if s.TemporalMaxMB > 0 {
			fmt.Fprintf(w, "; temporal %.0f -> %.0f MB (max %.0f, drift %+.1f%%)", s.TemporalWarmMB, s.TemporalLastMB, s.TemporalMaxMB, s.TemporalDriftPct)
		}
		fmt.Fprintln(w)
	}
	printSchema(w, res.Schema)

	if len(res.Errors) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, e := range res.Errors {
			fmt.Fprintln(w, "  "+e)
		}
	}

	fmt.Fprintln(w, "\ntargets (reported only; the exit status ignores them):")
	if len(res.Targets) == 0 {
		fmt.Fprintln(w, "  none could be evaluated")
	}
	for _, t := range res.Targets {
		fmt.Fprintf(w, "  %s  %s\n        %s\n", passFail(t.Pass), t.Name, t.Detail)
	}

	r := res.Ratios
	fmt.Fprintln(w, "\nratios (system run:", orDash(r.Scenario)+")")
	fmt.Fprintf(w, "  system deliveries/s / HTTP baseline requests/s          = %.0f / %.0f = %s\n", r.DeliveriesPerSec, r.HTTPBaselineRequestsPerSec, ratio(r.OverHTTPBaseline))
	fmt.Fprintf(w, "  system deliveries/s / engine completed workflows/s      = %.0f / %.1f = %s\n", r.DeliveriesPerSec, r.EngineCompletedWorkflowsPerSec, ratio(r.OverEngineCompletedWorkflows))
}

// printRequests prints hookd's Temporal requests per event by method, the most frequent first.
func printRequests(w io.Writer, scenarios []*ScenarioResult) {
	fmt.Fprintln(w, "\nTemporal requests per event by method (hookd's SDK client: API and worker; long polls not counted)")
	for _, s := range scenarios {
		ops := make([]string, 0, len(s.RequestsPerEvent))
		total := 0.0
		for op, n := range s.RequestsPerEvent {
			ops = append(ops, op)
			total += n
		}
		sort.Slice(ops, func(i, j int) bool { return s.RequestsPerEvent[ops[i]] > s.RequestsPerEvent[ops[j]] })
		parts := make([]string, 0, len(ops))
		for _, op := range ops {
			parts = append(parts, fmt.Sprintf("%s %.3g", op, s.RequestsPerEvent[op]))
		}
		fmt.Fprintf(w, "  %s: %.3g in all: %s\n", s.Name, total, strings.Join(parts, ", "))
	}
}

// printHistories prints the size of the sampled event workflows' histories, every run of each.
func printHistories(w io.Writer, scenarios []*ScenarioResult) {
	fmt.Fprintln(w, "\nevent workflow histories (sampled, every run; sizes are encoded protobuf)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system scenario\tsampled\truns/wf\tevents/wf\tevents/delivery\tKB/wf\tlargest event B\tlargest event type\t")
	for _, s := range scenarios {
		h := s.History
		if h == nil {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t-\t-\t\n", s.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%.4f\t%.1f\t%d\t%s\t\n", s.Name, h.Sampled, h.RunsPerWorkflow, h.EventsPerWorkflow,
			h.EventsPerDelivery, h.BytesPerWorkflow/1024, h.MaxEventBytes, strings.TrimPrefix(h.MaxEventType, "EVENT_TYPE_"))
	}
	tw.Flush()
}

// receiversOn says how many receivers the HTTP baseline addressed and on how many servers.
func receiversOn(receivers, listeners int) string {
	if listeners == 0 || listeners == receivers {
		return fmt.Sprintf("%d receivers", receivers)
	}
	return fmt.Sprintf("%d receivers on %d ports", receivers, listeners)
}

// timing finds the mean of a histogram by name and labels ("" for the sum of all labels).
func timing(ts []Timing, name, labels string) string {
	var n uint64
	var sum float64
	for _, t := range ts {
		if t.Name != name || (labels != "" && !strings.Contains(t.Labels, labels)) {
			continue
		}
		n += t.Count
		sum += t.MeanMs * float64(t.Count)
	}
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", sum/float64(n))
}

func ratio(f float64) string {
	if f == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3g", f)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printSchema prints the schema phase: publish throughput with and without validation, and the
// validation's own cost.
func printSchema(w io.Writer, s *SchemaResult) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "\nvalidation at publish (%d-field schema, %d-byte data, %d events per run, %d publishers, runs alternating with/without; load %s -> %s):\n",
		s.Fields, s.PayloadBytes, s.Events, s.Concurrency, s.LoadAvgStart, s.LoadAvgEnd)
	fmt.Fprintf(w, "  publishes accepted/s with schema %.0f (runs %v), without %.0f (runs %v): ratio with/without %.3f (median of the pairs)\n",
		s.WithPerSec, s.WithRuns, s.WithoutPerSec, s.WithoutRuns, s.Ratio)
	fmt.Fprintf(w, "  validation alone (parse + validate, one thread): %.1f µs CPU per event (%.1f µs wall)\n", s.ValidateCPUMicros, s.ValidateWallMicros)
}
