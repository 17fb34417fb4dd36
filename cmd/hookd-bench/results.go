package main

// The types here are every figure the bench writes to its JSON file (-out), one per phase.

import "time"

// Results is everything written to the JSON file.
type Results struct {
	Timestamp      time.Time     `json:"timestamp"`
	GoVersion      string        `json:"goVersion"`
	GOOS           string        `json:"goos"`
	GOARCH         string        `json:"goarch"`
	NumCPU         int           `json:"numCPU"`
	GOMAXPROCS     int           `json:"gomaxprocs"`
	LoadAvgStart   string        `json:"loadAvgAtStart"`
	TemporalStore  string        `json:"temporalStore"` // "memory" or "sqlite"
	TemporalPID    int           `json:"temporalPid,omitempty"`
	Options        options       `json:"options"`
	HTTPBaseline   *HTTPResult   `json:"httpBaseline,omitempty"`
	EngineBaseline *EngineResult `json:"engineBaseline,omitempty"`
	// EngineLocal is the engine's floor for hookd's event workflow shape: one local activity, eager start.
	EngineLocal *EngineResult     `json:"engineLocalBaseline,omitempty"`
	Scenarios   []*ScenarioResult `json:"scenarios"`
	Soak        *SoakResult       `json:"soak,omitempty"`
	Throttle    *ThrottleResult   `json:"throttle,omitempty"`
	Schema      *SchemaResult     `json:"schema,omitempty"`
	Targets     []Target          `json:"targets"`
	Ratios      Ratios            `json:"ratios"`
	TotalSec    float64           `json:"totalSec"`
	Errors      []string          `json:"errors,omitempty"`
}

// Ratios compare the system with the baselines (system run at the most subscribers per event).
type Ratios struct {
	Scenario                       string  `json:"scenario"`
	DeliveriesPerSec               float64 `json:"deliveriesPerSec"`
	OverHTTPBaseline               float64 `json:"deliveriesOverHttpBaseline"`
	OverEngineCompletedWorkflows   float64 `json:"deliveriesOverEngineCompletedWorkflows"`
	HTTPBaselineRequestsPerSec     float64 `json:"httpBaselineRequestsPerSec"`
	EngineCompletedWorkflowsPerSec float64 `json:"engineCompletedWorkflowsPerSec"`
}

// Target is one of the product owner's targets.
type Target struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Bound    float64 `json:"bound"`
	Pass     bool    `json:"pass"`
	Detail   string  `json:"detail"`
}

// ScenarioResult is one system run.
type ScenarioResult struct {
	Name         string  `json:"name"`
	Mode         string  `json:"mode"` // full-speed, fixed-rate or soak
	Events       int     `json:"events"`
	Subscribers  int     `json:"subscribers"`
	Concurrency  int     `json:"concurrency"`
	TargetRate   float64 `json:"targetRate,omitempty"` // events/s, fixed-rate and soak
	TaskQueue    string  `json:"taskQueue"`
	FanOutMode   string  `json:"fanOutMode"`   // local or activity (HOOKD_FANOUT_MODE)
	SubscribeSec float64 `json:"subscribeSec"` // creating the subscriptions, before the first post

	Accepted       int64   `json:"accepted"` // answered 201
	Rejected       int64   `json:"rejected"`
	FirstError     string  `json:"firstError,omitempty"`
	BehindSchedule int64   `json:"behindSchedule,omitempty"` // fixed rate: posts sent >50 ms after their slot
	MaxLagMs       float64 `json:"maxLagMs,omitempty"`
	PostSec        float64 `json:"postSec"`      // first post to last 201
	EventsPerSec   float64 `json:"eventsPerSec"` // accepted / postSec
	APIAnswer      Latency `json:"apiAnswer"`    // POST /v1/events round trip

	ExpectedDeliveries   int64   `json:"expectedDeliveries"` // accepted x subscribers
	Arrived              int64   `json:"arrived"`            // distinct (receiver, webhook-id)
	Missing              int64   `json:"missing"`
	Duplicates           int64   `json:"duplicates"`
	ArrivedWithout201    int64   `json:"arrivedWithout201,omitempty"`
	TimedOut             bool    `json:"timedOut,omitempty"`
	DeliverySec          float64 `json:"deliverySec"`      // first post to last arrival
	DeliveriesPerSec     float64 `json:"deliveriesPerSec"` // arrived / deliverySec
	EndToEndEventsPerSec float64 `json:"endToEndEventsPerSec"`
	Latency              Latency `json:"answerToArrival"`
	ArrivedBeforeAnswer  int64   `json:"arrivedBeforeAnswer"` // counted as 0 ms in the latency

	WorkflowsClosedSec float64       `json:"workflowsClosedSec,omitempty"` // first post until no workflow of the queue runs (polled)
	Workflows          int64         `json:"workflows"`                    // workflows on the scenario's task queue
	WorkflowsPerEvent  float64       `json:"workflowsPerEvent"`
	History            *HistoryStats `json:"history,omitempty"`
	RSS                RSS           `json:"rss"`
	CPU                CPU           `json:"cpu"` // first post until the workflows closed
	CPUPerDelivery     CPUPerDel     `json:"cpuMsPerDelivery"`
	// SQLPerEvent is PostgreSQL transactions in hookd's database per accepted event, from the first
	// post until hookd stopped. Each statement is a transaction of its own; the hot path's are
	// prepared (one Sync each), the others unnamed, which lib/pq ends with two Syncs and PostgreSQL
	// counts twice: off the hot path this over-counts statements, never under-counts them.
	SQLPerEvent float64 `json:"sqlStatementsPerEvent"`
	// RequestsPerEvent is hookd's Temporal gRPC requests per accepted event, by method (from the
	// SDK's request metrics; long polls are not among them).
	RequestsPerEvent map[string]float64 `json:"temporalRequestsPerEvent,omitempty"`
	Timings          []Timing           `json:"timings,omitempty"` // from hookd's and the Temporal SDK's metrics

	series []rssSample
}

// CPUPerDel is CPU milliseconds per delivery by process group.
type CPUPerDel struct {
	Self     float64 `json:"self"`
	Hookd    float64 `json:"hookd,omitempty"` // -processes: hookd's api and worker processes (else within self)
	Temporal float64 `json:"temporal"`
	Postgres float64 `json:"postgres"` // every postgres process on the machine
	// PostgresDB is the backends of the system's own databases (0: not known).
	PostgresDB float64 `json:"postgresDb,omitempty"`
	// System is the whole stack: hookd (self when it runs in this process, which then includes the
	// bench's posters and receivers), the Temporal server and PostgreSQL (its backends of the
	// system's databases when known, else every postgres process).
	System float64 `json:"system"`
}

// HistoryStats is the Temporal cost of a sample of event workflows, every run of each (a long
// fan-out continues as new).
type HistoryStats struct {
	Sampled                int     `json:"sampledEventWorkflows"`
	RunsPerWorkflow        float64 `json:"runsPerEventWorkflow"`
	EventsPerWorkflow      float64 `json:"historyEventsPerEventWorkflow"`
	EventsPerDelivery      float64 `json:"historyEventsPerDelivery"`
	BytesPerWorkflow       float64 `json:"historyBytesPerEventWorkflow"` // sum of the events' encoded sizes
	MaxEventBytes          int     `json:"maxHistoryEventBytes"`         // the largest single event of the sample: a proxy for the largest payload
	MaxEventType           string  `json:"maxHistoryEventType"`
	ActivitiesPerDelivery  float64 `json:"activitiesPerDelivery"`      // ActivityTaskScheduled events
	LocalPerDelivery       float64 `json:"localActivitiesPerDelivery"` // LocalActivity markers (no task round trip)
	ChildWorkflowsPerEvent float64 `json:"childWorkflowsPerEvent"`
	// Example is the event types of the first sampled workflow (the first maxExampleTypes of them).
	Example []string `json:"exampleEventTypes"`
}

// SoakResult is the RSS of a long fixed-rate run.
type SoakResult struct {
	Deliveries         int64           `json:"deliveries"`
	Rate               float64         `json:"eventsPerSec"`
	SelfStartMB        float64         `json:"selfStartMB"`
	SelfWarmMB         float64         `json:"selfAfterWarmupMB"` // first sample after 10% of the deliveries
	SelfLastMB         float64         `json:"selfLastMB"`
	SelfMaxMB          float64         `json:"selfMaxMB"`
	SelfDriftPct       float64         `json:"selfDriftPct"`                 // last vs after warm-up
	Flat               bool            `json:"flatWithin10Pct"`              // self, and hookd's processes with -processes
	HookdWarmMB        float64         `json:"hookdAfterWarmupMB,omitempty"` // -processes: api + worker
	HookdLastMB        float64         `json:"hookdLastMB,omitempty"`
	HookdMaxMB         float64         `json:"hookdMaxMB,omitempty"`
	HookdDriftPct      float64         `json:"hookdDriftPct,omitempty"`
	TemporalWarmMB     float64         `json:"temporalAfterWarmupMB,omitempty"`
	TemporalLastMB     float64         `json:"temporalLastMB,omitempty"`
	TemporalMaxMB      float64         `json:"temporalMaxMB,omitempty"`
	TemporalDriftPct   float64         `json:"temporalDriftPct,omitempty"`
	Scenario           *ScenarioResult `json:"scenario"`
	Series             []rssSample     `json:"series"`
	ProcessDescription string          `json:"process"`
}

// ThrottleResult is the throttle run: one subscription limited to throttleLimit deliveries/s
// beside unlimited subscriptions of the same events.
type ThrottleResult struct {
	Events          int     `json:"events"`
	Unlimited       int     `json:"unlimitedSubscriptions"`
	Limit           float64 `json:"limitPerSec"`
	LimitedRate     float64 `json:"limitedDeliveriesPerSec"` // (n-1) / (last - first arrival)
	LimitedMaxInSec int     `json:"limitedMaxInAnySecond"`
	LimitedSec      float64 `json:"limitedSec"`   // first publish to last limited arrival
	UnlimitedSec    float64 `json:"unlimitedSec"` // first publish to last unlimited arrival
	UnlimitedRate   float64 `json:"unlimitedDeliveriesPerSec"`
	Missing         int     `json:"missing,omitempty"`
}

// SchemaResult is the schema run: publishes of an event type with a realistic 30-field schema
// (validated at publish) and of one without, alternating in one hookd, and the validation alone.
type SchemaResult struct {
	Events       int `json:"eventsPerRun"`
	Concurrency  int `json:"concurrency"`
	Fields       int `json:"schemaFields"`
	PayloadBytes int `json:"payloadBytes"`
	// WithRuns and WithoutRuns are each run's publishes accepted per second (201 answers ÷ first
	// post → last 201), in the order run: with, without, with, without.
	WithRuns      []float64 `json:"withSchemaRunsPerSec"`
	WithoutRuns   []float64 `json:"withoutSchemaRunsPerSec"`
	WithPerSec    float64   `json:"withSchemaPerSec"` // median of the runs
	WithoutPerSec float64   `json:"withoutSchemaPerSec"`
	Ratio         float64   `json:"withOverWithout"` // median over the pairs (with, without) of with ÷ without
	// ValidateCPUMicros is the CPU of one thread per validation (parse and validate the raw data,
	// as the API does); ValidateWallMicros the wall time, which a loaded machine stretches.
	ValidateCPUMicros  float64 `json:"validateCpuMicrosPerEvent"`
	ValidateWallMicros float64 `json:"validateWallMicrosPerEvent"`
	Rejected           int64   `json:"rejected,omitempty"`
	FirstError         string  `json:"firstError,omitempty"`
	Missing            int64   `json:"missing,omitempty"`
	LoadAvgStart       string  `json:"loadAvgAtStart"`
	LoadAvgEnd         string  `json:"loadAvgAtEnd"`
}
