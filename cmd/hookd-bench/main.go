// Command hookd-bench measures hookd end to end on this machine, in one run, and compares it with
// two baselines measured in the same run:
//
//   - HTTP: a plain Go client POSTing Standard-Webhooks-signed payloads straight to loopback
//     receivers (the ceiling of "just send HTTP").
//   - engine: a plain Temporal SDK client and worker starting and completing trivial one-activity
//     workflows on the same dev server (the ceiling of "one workflow per thing").
//
// Then it runs hookd itself (API and worker in this process, service.Start) against a real Temporal
// dev server and a throwaway PostgreSQL database: events posted through the API at full speed and at
// a fixed rate, fanned out to loopback receivers, with throughput, answer-to-arrival latency, RSS and
// Temporal history cost per delivery. It prints a summary, checks the product owner's targets (never
// failing the exit status for a miss) and writes every figure to a JSON file.
//
//	make bench                       # the default run (a few minutes)
//	make bench BENCHFLAGS=-quick     # a smoke run
//
// See bench/README.md for what each figure means.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/keyring"
)

// options are the command line flags.
type options struct {
	Quick             bool    `json:"quick"`
	Scenarios         string  `json:"scenarios"`
	Concurrency       int     `json:"concurrency"`
	FixedDuration     float64 `json:"fixedDurationSec"`
	FixedRate         float64 `json:"fixedRate"`
	HTTPRequests      int     `json:"httpRequests"`
	HTTPReceivers     int     `json:"httpReceivers"`
	EngineWorkflows   int     `json:"engineWorkflows"`
	EngineConcurrency int     `json:"engineConcurrency"`
	EngineEager       bool    `json:"engineEagerStart"`
	Soak              int     `json:"soakDeliveries"`
	SoakSubs          int     `json:"soakSubscribers"`
	SQLite            bool    `json:"sqlite"`
	Temporal          string  `json:"temporal,omitempty"`
	Processes         bool    `json:"processes"`
	Shape             string  `json:"shape,omitempty"`
	Out               string  `json:"out"`
	Wait              float64 `json:"waitSec"`
	HistorySample     int     `json:"historySample"`
	ServiceLogs       string  `json:"serviceLogs"`
	SkipFixed         bool    `json:"skipFixed"`
	Throttle          bool    `json:"throttle"`
	Schema            bool    `json:"schema"`
	CPUProfile        string  `json:"cpuProfile,omitempty"`
	MemProfile        string  `json:"memProfile,omitempty"`
	SQLitePragmas     string  `json:"sqlitePragmas,omitempty"`
	Target            string  `json:"target,omitempty"`
	OperatorKey       string  `json:"-"`
	HookdPIDs         string  `json:"hookdPids,omitempty"`
	TargetDB          string  `json:"-"`
	SkipBaselines     bool    `json:"skipBaselines,omitempty"`
	TemporalDBs       string  `json:"temporalDbs,omitempty"`
}

func parseFlags() (options, []scenarioSize, error) {
	var o options
	fs := flag.CommandLine
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a pprof CPU profile of this process (hookd's API and worker, the receivers, the bench) to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a pprof allocation profile (alloc_space, every allocation sampled at the default rate) of this process at the end")
	fs.StringVar(&o.SQLitePragmas, "sqlite-pragmas", "default", "with -sqlite: the dev server's SQLite pragmas, comma separated (default: testenv.SQLitePragmas, a write-ahead log and synchronous=normal as make dev; none: the CLI's rollback journal)")
	fs.StringVar(&o.Target, "target", "", "drive a hookd already running (make dev, make cluster) through its HTTP API at this URL, e.g. http://127.0.0.1:8080: no hookd, dev server or database of the bench's own (default scenarios "+targetScenarios+", 32 publishers, -temporal 127.0.0.1:7233 for the engine baselines and the server's CPU)")
	fs.StringVar(&o.OperatorKey, "operator-key", os.Getenv("HOOKD_OPERATOR_KEY"), "-target: the running hookd's operator key (default $HOOKD_OPERATOR_KEY, else make dev's dev-operator-key)")
	fs.StringVar(&o.HookdPIDs, "hookd-pids", "", "-target: hookd's processes whose CPU counts as hookd's, comma separated (default: the process listening on the target's port)")
	fs.StringVar(&o.TargetDB, "target-db", "", "-target: hookd's database URL, to count SQL transactions per event (pg_stat_database; optional)")
	fs.StringVar(&o.TemporalDBs, "temporal-dbs", "", "the real Temporal server's PostgreSQL databases, comma separated (e.g. temporal,temporal_visibility): their backends' CPU counts as the system's PostgreSQL share")
	fs.BoolVar(&o.SkipBaselines, "skip-baselines", false, "skip the HTTP and engine baselines (with -target the HTTP baseline is always skipped)")
	fs.BoolVar(&o.Quick, "quick", false, "smoke run with small numbers (scenarios 200x10,500x1,1x5000; 5,000 HTTP requests; 300 engine workflows; 5 s fixed rate)")
	fs.StringVar(&o.Scenarios, "scenarios", "2000x10,5000x1,1x50000", "system scenarios, EVENTSxSUBSCRIBERS, comma separated")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "concurrent API posters at full speed (and HTTP baseline senders)")
	fs.Float64Var(&o.FixedDuration, "fixed-duration", 10, "seconds of posting at the fixed rate per scenario")
	fs.Float64Var(&o.FixedRate, "fixed-rate", 0, "events/s of the fixed-rate runs (0: half the end-to-end peak of the same scenario's full-speed run)")
	fs.IntVar(&o.HTTPRequests, "http-n", 50000, "requests of the HTTP baseline")
	fs.IntVar(&o.HTTPReceivers, "http-receivers", 0, "receivers of the HTTP baseline (0: the subscribers of the first scenario)")
	fs.IntVar(&o.EngineWorkflows, "engine-n", 2000, "workflows of the engine baseline")
	fs.IntVar(&o.EngineConcurrency, "engine-concurrency", 64, "concurrent starters of the engine baseline")
	fs.BoolVar(&o.EngineEager, "engine-eager", false, "start the engine baseline's workflows with eager start (hookd's API does)")
	fs.IntVar(&o.Soak, "soak", 0, "soak: this many deliveries at the fixed rate, sampling RSS (0 skips)")
	fs.IntVar(&o.SoakSubs, "soak-subs", 10, "subscribers per event during the soak")
	fs.BoolVar(&o.SQLite, "sqlite", false, "run the Temporal dev server on a sqlite file in a temp dir (default: in memory)")
	fs.StringVar(&o.Temporal, "temporal", "", "measure against this Temporal server (host:port; namespace default with hookd's search attributes, e.g. `make cluster`'s 127.0.0.1:7233) instead of a dev server")
	fs.BoolVar(&o.Processes, "processes", false, "run hookd as the production topology does: `hookd api` and `hookd worker` as processes of their own, built from this repository (default with -temporal; no eager start then unless -shape combined)")
	fs.StringVar(&o.Shape, "shape", "separate", "with -processes: separate (`hookd api` + `hookd worker`: no eager start) or combined (`hookd api -worker` + `hookd worker`: the API's workflows start eagerly on its own worker), as HOOKD_CLUSTER_SHAPE in make cluster")
	fs.StringVar(&o.Out, "out", "bench-results.json", "JSON file for every figure")
	fs.Float64Var(&o.Wait, "wait", 180, "seconds to wait for a scenario's deliveries after the last post before reporting what is missing")
	fs.IntVar(&o.HistorySample, "history-sample", 25, "event workflows per scenario whose Temporal history is counted")
	fs.StringVar(&o.ServiceLogs, "service-logs", "warn", "level of hookd's own logs on stderr (debug, info, warn, error or off)")
	fs.BoolVar(&o.SkipFixed, "skip-fixed", false, "skip the fixed-rate runs")
	fs.BoolVar(&o.Throttle, "throttle", true, "measure a subscription limited to 10 deliveries/s beside 9 unlimited ones (300 events; 100 with -quick)")
	fs.BoolVar(&o.Schema, "schema", true, "measure publish throughput with a 30-field schema vs without (2,000 events x 3 runs each, alternating, 32 publishers; 500 with -quick) and the validation's CPU per event")
	flag.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: hookd-bench [flags]\n\nMeasures hookd end to end against HTTP and Temporal baselines. Flags:\n")
		fs.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return o, nil, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Target != "" {
		o.Target = strings.TrimRight(o.Target, "/")
		if !set["scenarios"] {
			o.Scenarios = targetScenarios
		}
		if !set["concurrency"] {
			o.Concurrency = 32
		}
		if o.Temporal == "" {
			o.Temporal = "127.0.0.1:7233"
		}
		if o.OperatorKey == "" {
			o.OperatorKey = "dev-operator-key"
		}
		if !set["engine-n"] {
			o.EngineWorkflows = 600
		}
		if !set["throttle"] {
			o.Throttle = false
		}
		if !set["schema"] {
			o.Schema = false
		}
		if o.Soak > 0 || o.Processes || o.SQLite {
			return o, nil, fmt.Errorf("-target drives a running hookd: -soak, -processes and -sqlite do not apply")
		}
	} else if o.Temporal != "" && !set["processes"] {
		o.Processes = true
	}
	if o.Shape != "separate" && o.Shape != "combined" {
		return o, nil, fmt.Errorf("-shape %q: want separate or combined", o.Shape)
	}
	if !o.Processes {
		o.Shape = ""
	}
	if o.Quick {
		if !set["scenarios"] {
			o.Scenarios = "200x10,500x1,1x5000"
		}
		if !set["http-n"] {
			o.HTTPRequests = 5000
		}
		if !set["engine-n"] {
			o.EngineWorkflows = 300
		}
		if !set["fixed-duration"] {
			o.FixedDuration = 5
		}
		if !set["wait"] {
			o.Wait = 60
		}
		if !set["history-sample"] {
			o.HistorySample = 10
		}
	}
	sizes, err := parseScenarios(o.Scenarios)
	if err != nil {
		return o, nil, err
	}
	if o.Concurrency < 1 || o.EngineConcurrency < 1 || o.HTTPRequests < 1 || o.EngineWorkflows < 1 {
		return o, nil, fmt.Errorf("concurrency, engine-concurrency, http-n and engine-n must be positive")
	}
	if o.HTTPReceivers <= 0 {
		o.HTTPReceivers = sizes[0].Subs
	}
	if o.SoakSubs < 1 {
		o.SoakSubs = 1
	}
	return o, sizes, nil
}

type scenarioSize struct{ Events, Subs int }

func parseScenarios(s string) ([]scenarioSize, error) {
	var out []scenarioSize
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		e, sub, ok := strings.Cut(strings.ToLower(part), "x")
		ne, err1 := strconv.Atoi(strings.TrimSpace(e))
		ns, err2 := strconv.Atoi(strings.TrimSpace(sub))
		if !ok || err1 != nil || err2 != nil || ne < 1 || ns < 1 {
			return nil, fmt.Errorf("scenario %q: want EVENTSxSUBSCRIBERS, e.g. 2000x10", part)
		}
		out = append(out, scenarioSize{ne, ns})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenarios")
	}
	return out, nil
}

// minFixedEvents is the fewest events of a scenario that gets a fixed-rate run: half the peak
// of a handful of events is no rate (1x50000 measures one large fan-out, not a stream).
const minFixedEvents = 10

// bench is the shared state of one run.
type bench struct {
	opt      options
	res      *Results
	temporal *testenv.Temporal
	tc       client.Client
	db       *testenv.Database
	mon      *monitor
	svcLog   *slog.Logger
	svcLevel slog.Level
	nonce    string
	keys     *keyring.Keyring // seal the secrets in db, unless HOOKD_ENCRYPTION_KEY is set
	keySpec  string           // the same keys as HOOKD_ENCRYPTION_KEY, for hookd's processes
	hookdBin string           // -processes: the hookd binary the scenarios run
	statsDB  *sqlx.DB         // hookd's database, for its transaction count (nil: not counted)
	target   *external        // -target: the running hookd
	pgDBs    []string         // the system's databases, whose backends' CPU is PostgreSQL's share
}

func main() {
	opt, sizes, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookd-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opt.CPUProfile != "" {
		f, err := os.Create(opt.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "hookd-bench: cpuprofile:", err)
			os.Exit(2)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if err := run(ctx, opt, sizes); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "hookd-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opt options, sizes []scenarioSize) error {
	started := time.Now()
	res := &Results{
		Timestamp: started.UTC(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadAvgStart: loadAvg(), TemporalStore: "in memory", Options: opt,
	}
	b := &bench{opt: opt, res: res, nonce: strconv.FormatInt(started.Unix()%1e6, 36)}
	b.svcLog, b.svcLevel = serviceLogger(opt.ServiceLogs)

	say("hookd-bench: %d CPU, %s, load %s; scenarios %s, concurrency %d", res.NumCPU, res.GoVersion, res.LoadAvgStart, opt.Scenarios, opt.Concurrency)
	var dbFile string
	if opt.Target != "" {
		return b.runTarget(ctx, sizes)
	}
	if opt.SQLite {
		dir, err := os.MkdirTemp("", "hookd-bench-temporal-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbFile = filepath.Join(dir, "temporal.db")
		res.TemporalStore = "sqlite (" + opt.SQLitePragmas + " pragmas)"
	}
	var t *testenv.Temporal
	var err error
	if opt.Temporal != "" {
		t = &testenv.Temporal{HostPort: opt.Temporal}
		res.TemporalStore = "external server at " + opt.Temporal
	} else {
		say("starting the Temporal dev server (%s) ...", res.TemporalStore)
		if t, err = testenv.StartTemporalWith(ctx, testenv.TemporalOptions{DBFile: dbFile, Pragmas: sqlitePragmas(opt.SQLitePragmas)}); err != nil {
			return err
		}
	}
	b.temporal = t
	defer t.Stop()
	res.TemporalPID = findTemporalPID(t.HostPort)
	if res.TemporalPID == 0 {
		say("note: could not find the dev server's pid; its RSS is not reported")
	}
	say("Temporal server at %s (pid %d)", t.HostPort, res.TemporalPID)

	b.tc, err = client.DialContext(ctx, client.Options{HostPort: t.HostPort, Namespace: "default",
		Logger: tlog.NewStructuredLogger(quietLogger())})
	if err != nil {
		return fmt.Errorf("dial temporal: %w", err)
	}
	defer b.tc.Close()

	b.db, err = testenv.NewDatabase(ctx)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.db.Drop(dctx); err != nil {
			fmt.Fprintln(os.Stderr, "hookd-bench: drop database:", err)
		}
	}()
	say("PostgreSQL database %s", b.db.Name)
	// The database is the bench's own, so a key made for this run will do.
	spec, err := keyring.Generate("bench")
	if env := os.Getenv("HOOKD_ENCRYPTION_KEY"); env != "" {
		spec = env
	}
	if err == nil {
		b.keys, err = keyring.Parse(spec)
	}
	if err != nil {
		return err
	}
	b.keySpec = spec
	if opt.Processes {
		dir, err := os.MkdirTemp("", "hookd-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if b.hookdBin, err = buildHookd(ctx, dir); err != nil {
			return err
		}
		say("hookd runs as processes of its own, shape %s (%s)", opt.Shape, b.hookdBin)
	}

	b.statsDB = b.db.DB
	b.pgDBs = append(b.pgDBs, b.db.Name)
	return b.measure(ctx, sizes, started)
}

// measure runs the phases against the system run set up, then prints and writes the results.
func (b *bench) measure(ctx context.Context, sizes []scenarioSize, started time.Time) error {
	opt, res := b.opt, b.res
	b.mon = newMonitor(res.TemporalPID)
	for _, n := range strings.Split(opt.TemporalDBs, ",") {
		b.pgDBs = append(b.pgDBs, strings.TrimSpace(n))
	}
	b.mon.databases(b.pgDBs...)
	go b.mon.run(ctx)

	fail := func(what string, err error) {
		msg := fmt.Sprintf("%s: %v", what, err)
		res.Errors = append(res.Errors, msg)
		say("ERROR %s", msg)
	}

	// 1. HTTP baseline.
	if opt.Target == "" && !opt.SkipBaselines {
		if h, err := b.httpBaseline(ctx); err != nil {
			fail("HTTP baseline", err)
		} else {
			res.HTTPBaseline = h
		}
	}
	// 2. Engine baselines: one activity, and hookd's shape.
	if ctx.Err() == nil && !opt.SkipBaselines {
		if e, err := b.engineBaseline(ctx, shapeActivity); err != nil {
			fail("engine baseline", err)
		} else {
			res.EngineBaseline = e
		}
	}
	if ctx.Err() == nil && !opt.SkipBaselines {
		if e, err := b.engineBaseline(ctx, shapeLocal); err != nil {
			fail("engine baseline (local activity)", err)
		} else {
			res.EngineLocal = e
		}
	}
	// 3. System: each size at full speed, then at half its end-to-end peak.
	peaks := map[int]float64{} // subscribers -> end-to-end events/s at full speed
	for _, sz := range sizes {
		if ctx.Err() != nil {
			break
		}
		full, err := b.runScenario(ctx, scenarioSpec{Events: sz.Events, Subs: sz.Subs, Concurrency: opt.Concurrency})
		if full != nil {
			res.Scenarios = append(res.Scenarios, full)
		}
		if err != nil {
			fail(fmt.Sprintf("scenario %dx%d", sz.Events, sz.Subs), err)
			continue
		}
		peaks[sz.Subs] = max(peaks[sz.Subs], full.EndToEndEventsPerSec)
		if opt.SkipFixed || sz.Events < minFixedEvents || ctx.Err() != nil {
			continue
		}
		rate := opt.FixedRate
		if rate <= 0 {
			rate = full.EndToEndEventsPerSec / 2
		}
		if rate <= 0 {
			fail(fmt.Sprintf("fixed rate %dx%d", sz.Events, sz.Subs), fmt.Errorf("no peak to halve"))
			continue
		}
		n := max(1, int(rate*opt.FixedDuration+0.5))
		fixed, err := b.runScenario(ctx, scenarioSpec{Events: n, Subs: sz.Subs, Concurrency: opt.Concurrency, Rate: rate})
		if fixed != nil {
			res.Scenarios = append(res.Scenarios, fixed)
		}
		if err != nil {
			fail(fmt.Sprintf("fixed-rate %dx%d", n, sz.Subs), err)
		}
	}
	// 4. Throttling.
	if opt.Throttle && ctx.Err() == nil {
		events := 300
		if opt.Quick {
			events = 100
		}
		t, err := b.throttleRun(ctx, events, 9)
		if err != nil {
			fail("throttle", err)
		}
		res.Throttle = t
	}
	// 5. Validation at publish.
	if opt.Schema && ctx.Err() == nil {
		events := 2000
		if opt.Quick {
			events = 500
		}
		s, err := b.schemaRun(ctx, events, 32)
		if err != nil {
			fail("schema", err)
		}
		res.Schema = s
	}
	// 6. Soak.
	if opt.Soak > 0 && ctx.Err() == nil {
		rate := opt.FixedRate
		if rate <= 0 {
			rate = peaks[opt.SoakSubs] / 2
		}
		if rate <= 0 {
			if sc := bestScenario(res.Scenarios); sc != nil {
				// No full-speed run at this fan-out: scale the deliveries rate we saw.
				rate = sc.DeliveriesPerSec / float64(opt.SoakSubs) / 2
			}
		}
		if s, err := b.soak(ctx, rate); err != nil {
			fail("soak", err)
			res.Soak = s
		} else {
			res.Soak = s
		}
	}
	b.mon.stop()
	res.TotalSec = time.Since(started).Seconds()
	res.Targets, res.Ratios = evaluate(res)

	printSummary(os.Stdout, res)
	if opt.MemProfile != "" {
		if err := writeMemProfile(opt.MemProfile); err != nil {
			return err
		}
	}
	if err := writeJSON(opt.Out, res); err != nil {
		return err
	}
	say("wrote %s", opt.Out)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	return nil
}

func writeJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// say prints a line of the run's narrative.
func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// serviceLogger is hookd's logger: stderr at the given level, or nothing.
func serviceLogger(level string) (*slog.Logger, slog.Level) {
	if level == "off" || level == "none" {
		return slog.New(slog.NewTextHandler(io.Discard, nil)), slog.LevelError + 4
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), l
}

// quietLogger is for the bench's own Temporal clients and workers.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
