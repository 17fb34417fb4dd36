package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the "postgres" driver for -target-db
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/hookd/hookd/internal/testenv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// targetScenarios are -target's default scenarios: the shapes issue 27 compares (most real traffic
// is 1-10 destinations per event; 50x100 and 5x1000 are the wide fan-outs).
const targetScenarios = "1000x10,2000x1,50x100,5x1000"

// external is a hookd already running (`make dev`, `make cluster`), driven through its HTTP API
// only: the bench neither starts nor stops it, and measures the CPU of the processes it names.
type external struct {
	base     string
	hookdPID []int
}

func (e *external) url() string { return e.base }
func (e *external) pids() []int { return e.hookdPID }
func (e *external) stop() error { return nil }

// gather scrapes the API's /metrics (hookd dev serves its worker's metrics there too).
func (e *external) gather() []*dto.MetricFamily {
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		out = append(out, f)
	}
	return out
}

// targetPIDs are hookd's processes for -target: those -hookd-pids names, else the process
// listening on the target's port (`hookd dev`, or `hookd api`: a separate worker is named with
// -hookd-pids).
func targetPIDs(target, explicit string) ([]int, error) {
	if explicit != "" {
		var out []int
		for _, f := range strings.Split(explicit, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("-hookd-pids: %q is no pid", f)
			}
			out = append(out, pid)
		}
		return out, nil
	}
	u, err := url.Parse(target)
	if err != nil || u.Port() == "" {
		return nil, fmt.Errorf("-target %q: want http://host:port", target)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return nil, fmt.Errorf("-target %q: %w", target, err)
	}
	pid := listeningPID(port)
	if pid == 0 {
		return nil, fmt.Errorf("no process of this user listens on port %d: name hookd's processes with -hookd-pids", port)
	}
	return []int{pid}, nil
}

// listeningPID finds the process with a listening TCP socket on port (IPv4 or IPv6), from
// /proc/net/tcp* and the processes' file descriptors; 0 if none is visible.
func listeningPID(port int) int {
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// runTarget measures the hookd at -target: the engine baselines on its Temporal server (-temporal),
// then the scenarios through its API.
func (b *bench) runTarget(ctx context.Context, sizes []scenarioSize) error {
	opt, res := b.opt, b.res
	started := time.Now()
	pids, err := targetPIDs(opt.Target, opt.HookdPIDs)
	if err != nil {
		return err
	}
	b.target = &external{base: opt.Target, hookdPID: pids}
	resp, err := http.Get(opt.Target + "/readyz")
	if err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("-target: GET /readyz: status %d", resp.StatusCode)
	}
	b.temporal = &testenv.Temporal{HostPort: opt.Temporal}
	res.TemporalStore = "the target's server at " + opt.Temporal
	res.TemporalPID = findTemporalPID(opt.Temporal)
	say("driving hookd at %s (pids %v) with %d publishers; Temporal at %s (pid %d)", opt.Target, pids, opt.Concurrency, opt.Temporal, res.TemporalPID)
	b.tc, err = client.DialContext(ctx, client.Options{HostPort: opt.Temporal, Namespace: "default",
		Logger: tlog.NewStructuredLogger(quietLogger())})
	if err != nil {
		return fmt.Errorf("dial temporal: %w", err)
	}
	defer b.tc.Close()
	dbURL := opt.TargetDB
	if dbURL == "" {
		dbURL = environOf(pids[0], "HOOKD_DATABASE_URL")
	}
	if u, err := url.Parse(dbURL); err == nil && u.Path != "" {
		b.pgDBs = append(b.pgDBs, strings.TrimPrefix(u.Path, "/"))
	}
	if opt.TargetDB != "" {
		if b.statsDB, err = sqlx.Open("postgres", opt.TargetDB); err != nil {
			return err
		}
		defer b.statsDB.Close()
	}
	return b.measure(ctx, sizes, started)
}

// sqlitePragmas is -sqlite-pragmas for testenv: nil for its defaults, none for the CLI's.
func sqlitePragmas(flag string) []string {
	switch flag {
	case "", "default":
		return nil
	case "none":
		return []string{}
	}
	var out []string
	for _, p := range strings.Split(flag, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// writeMemProfile writes the allocations sampled so far (go tool pprof -sample_index=alloc_space).
func writeMemProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// environOf is a variable of a process's environment (readable for one's own processes), or "".
func environOf(pid int, name string) string {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range strings.Split(string(raw), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
