package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSS is the resident memory seen during a phase, sampled once a second and at its end.
type RSS struct {
	SelfMaxMB     float64 `json:"selfMaxMB"` // this process: API + worker + the bench's own clients and receivers
	SelfEndMB     float64 `json:"selfEndMB"`
	HookdMaxMB    float64 `json:"hookdMaxMB,omitempty"` // -processes: hookd's api and worker processes together
	HookdEndMB    float64 `json:"hookdEndMB,omitempty"`
	TemporalMaxMB float64 `json:"temporalMaxMB,omitempty"` // the Temporal dev server process
	TemporalEndMB float64 `json:"temporalEndMB,omitempty"`
}

// rssSample is one point of the soak's memory series.
type rssSample struct {
	AtSec      float64 `json:"atSec"`
	Deliveries int64   `json:"deliveries"`
	SelfMB     float64 `json:"selfMB"`
	HookdMB    float64 `json:"hookdMB,omitempty"` // -processes: api + worker
	TemporalMB float64 `json:"temporalMB,omitempty"`
}

// monitor prints a progress line every second and samples RSS for the current phase.
type monitor struct {
	tpid  int
	mu    sync.Mutex
	hookd []int           // hookd's own processes (-processes), counted apart from this one
	pgDBs map[string]bool // the system's databases: their backends' CPU is counted apart

	label    string
	line     func() string
	begun    time.Time
	rss      RSS
	series   []rssSample
	cpu0     cpuSnapshot
	progress func() int64 // non-nil while recording a series
	done     chan struct{}
	stopped  chan struct{}
}

func newMonitor(temporalPID int) *monitor {
	return &monitor{tpid: temporalPID, done: make(chan struct{}), stopped: make(chan struct{})}
}

func (m *monitor) run(ctx context.Context) {
	defer close(m.stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.done:
			return
		case <-t.C:
			m.tick(true)
		}
	}
}

func (m *monitor) stop() {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
}

// begin starts a phase; line describes its progress.
func (m *monitor) begin(label string, line func() string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.label, m.line, m.begun = label, line, time.Now()
	m.rss = RSS{}
	m.series, m.progress = nil, nil
	m.cpu0 = takeCPU(m.tpid, m.hookd, m.pgDBs)
	m.sampleLocked()
}

// databases names the system's PostgreSQL databases (hookd's, and the real Temporal server's):
// the CPU of their backends is the system's share of PostgreSQL on a machine others use too.
func (m *monitor) databases(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pgDBs = map[string]bool{}
	for _, n := range names {
		if n != "" {
			m.pgDBs[n] = true
		}
	}
}

// watch names hookd's processes, when it does not run in this one.
func (m *monitor) watch(pids []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hookd = pids
	m.cpu0 = takeCPU(m.tpid, m.hookd, m.pgDBs)
}

// record keeps an RSS series for the phase, with progress as its x axis.
func (m *monitor) record(progress func() int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress = progress
	m.sampleLocked()
}

// phaseStats is what the monitor saw during a phase.
type phaseStats struct {
	RSS    RSS
	CPU    CPU
	Series []rssSample
}

// end finishes the phase and returns what it sampled.
func (m *monitor) end() phaseStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sampleLocked()
	st := phaseStats{RSS: m.rss, CPU: takeCPU(m.tpid, m.hookd, m.pgDBs).since(m.cpu0), Series: m.series}
	m.label, m.line, m.progress, m.series = "", nil, nil, nil
	return st
}

func (m *monitor) tick(print bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.line == nil {
		return
	}
	self, tmp := m.sampleLocked()
	if print {
		mem := fmt.Sprintf("rss %.0f MB", self)
		if len(m.hookd) > 0 {
			mem += fmt.Sprintf(", hookd %.0f MB", m.rss.HookdEndMB)
		}
		if m.tpid != 0 {
			mem += fmt.Sprintf(", temporal %.0f MB", tmp)
		}
		fmt.Printf("  [%5.1fs] %s: %s | %s\n", time.Since(m.begun).Seconds(), m.label, m.line(), mem)
	}
}

func (m *monitor) sampleLocked() (self, tmp float64) {
	self = readRSS(0)
	m.rss.SelfEndMB = self
	m.rss.SelfMaxMB = max(m.rss.SelfMaxMB, self)
	var hookd float64
	for _, pid := range m.hookd {
		hookd += readRSS(pid)
	}
	if len(m.hookd) > 0 {
		m.rss.HookdEndMB = hookd
		m.rss.HookdMaxMB = max(m.rss.HookdMaxMB, hookd)
	}
	if m.tpid != 0 {
		tmp = readRSS(m.tpid)
		m.rss.TemporalEndMB = tmp
		m.rss.TemporalMaxMB = max(m.rss.TemporalMaxMB, tmp)
	}
	if m.progress != nil {
		m.series = append(m.series, rssSample{AtSec: round(time.Since(m.begun).Seconds(), 1), Deliveries: m.progress(),
			SelfMB: round(self, 1), HookdMB: round(hookd, 1), TemporalMB: round(tmp, 1)})
	}
	return self, tmp
}

// readRSS is VmRSS of a process (0: this one) in MB, or 0 if unreadable.
func readRSS(pid int) float64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// CPU is the CPU time spent during a phase, in seconds, by process group. Divided by WallSec it is
// the number of cores busy on average.
type CPU struct {
	WallSec     float64 `json:"wallSec"`
	SelfSec     float64 `json:"selfSec"`     // this process: hookd API + worker (unless -processes) + the bench's posters and receivers
	HookdSec    float64 `json:"hookdSec"`    // -processes: hookd's api and worker processes
	TemporalSec float64 `json:"temporalSec"` // the dev server
	PostgresSec float64 `json:"postgresSec"` // every process named postgres (server and backends)
	// PostgresDBSec is the backends connected to the system's databases only (hookd's; with
	// -temporal-dbs the real server's), without the shared background processes (WAL writer,
	// checkpointer, autovacuum) or other users of the same server. Backends that exit during the
	// phase lose their time here (pools keep theirs open).
	PostgresDBSec float64 `json:"postgresDbSec,omitempty"`
	OtherSec      float64 `json:"otherSec"` // the rest of the machine (other workloads, the kernel)
	IdleSec       float64 `json:"idleSec"`  // idle and iowait, all cores
}

type cpuSnapshot struct {
	at                                                time.Time
	self, hookd, temporal, postgres, pgDB, busy, idle float64 // seconds
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100.0

func takeCPU(tpid int, hookd []int, pgDBs map[string]bool) cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), self: procCPU("self", false)}
	for _, pid := range hookd {
		s.hookd += procCPU(strconv.Itoa(pid), false)
	}
	if tpid != 0 {
		s.temporal = procCPU(strconv.Itoa(tpid), false)
	}
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			if comm, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
				// With children's time: the postmaster collects that of backends that exited.
				s.postgres += procCPU(e.Name(), true)
				if len(pgDBs) > 0 && backendOf(e.Name(), pgDBs) {
					s.pgDB += procCPU(e.Name(), false)
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			if i == 4 || i == 5 { // idle, iowait
				s.idle += v / clkTck
			} else {
				s.busy += v / clkTck
			}
		}
	}
	return s
}

// backendOf reports a PostgreSQL backend connected to one of dbs: its title is
// "postgres: [cluster: ]user database host(port) state".
func backendOf(pid string, dbs map[string]bool) bool {
	raw, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		return false
	}
	title := strings.TrimRight(string(raw), "\x00")
	if !strings.HasPrefix(title, "postgres: ") {
		return false
	}
	for _, f := range strings.Fields(title) {
		if dbs[f] {
			return true
		}
	}
	return false
}

// procCPU is a process's user+system time in seconds, from /proc/<pid>/stat.
func procCPU(pid string, children bool) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
	n := 2
	if children {
		n = 4
	}
	var t float64
	for k := 11; k < 11+n && k < len(f); k++ {
		v, _ := strconv.ParseFloat(f[k], 64)
		t += v
	}
	return t / clkTck
}

func (s cpuSnapshot) since(p cpuSnapshot) CPU {
	c := CPU{WallSec: round(s.at.Sub(p.at).Seconds(), 2), SelfSec: round(s.self-p.self, 2), HookdSec: round(s.hookd-p.hookd, 2),
		TemporalSec: round(s.temporal-p.temporal, 2),
		PostgresSec: round(max(0, s.postgres-p.postgres), 2), PostgresDBSec: round(max(0, s.pgDB-p.pgDB), 2), IdleSec: round(s.idle-p.idle, 2)}
	c.OtherSec = round(max(0, (s.busy-p.busy)-c.SelfSec-c.HookdSec-c.TemporalSec-c.PostgresSec), 2)
	return c
}

// cores renders the average cores busy per group.
func (c CPU) cores() string {
	if c.WallSec <= 0 {
		return "-"
	}
	w := c.WallSec
	return fmt.Sprintf("%.2f/%.2f/%.2f/%.2f", (c.SelfSec+c.HookdSec)/w, c.TemporalSec/w, c.PostgresSec/w, c.OtherSec/w)
}

// findTemporalPID finds the Temporal server serving hostPort: testenv does not expose its process,
// so scan /proc for a "temporal server start-dev ... --port <port>" command line, or else for the
// one real server built by `make cluster-tools` (bin/temporal-server-<version>) running here.
func findTemporalPID(hostPort string) int {
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var servers []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if strings.HasPrefix(filepath.Base(args[0]), "temporal-server-") {
			servers = append(servers, pid)
			continue
		}
		if !bytes.Contains(raw, []byte("start-dev")) {
			continue
		}
		for i, a := range args {
			if (a == "--port" || a == "-p") && i+1 < len(args) && args[i+1] == port {
				return pid
			}
			if a == "--port="+port {
				return pid
			}
		}
	}
	if len(servers) == 1 {
		return servers[0]
	}
	return 0
}

// rater renders "done/total (now/s, avg/s)" between calls.
type rater struct {
	start    time.Time
	prev     int64
	prevTime time.Time
}

func newRater() *rater { now := time.Now(); return &rater{start: now, prevTime: now} }

func (r *rater) line(what string, done, total int64) string {
	now := time.Now()
	cur := float64(done-r.prev) / now.Sub(r.prevTime).Seconds()
	avg := float64(done) / now.Sub(r.start).Seconds()
	r.prev, r.prevTime = done, now
	if total > 0 {
		return fmt.Sprintf("%s %d/%d (%.0f/s now, %.0f/s avg)", what, done, total, cur, avg)
	}
	return fmt.Sprintf("%s %d (%.0f/s now, %.0f/s avg)", what, done, cur, avg)
}

func round(f float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if f < 0 {
		return -float64(int64(-f*p+0.5)) / p
	}
	return float64(int64(f*p+0.5)) / p
}
