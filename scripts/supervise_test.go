// Package scripts tests the shell scripts behind make's targets: here, the supervisor that keeps
// `make cluster`'s processes running (supervise.sh, sourced by cluster.sh). Starting the real
// topology takes minutes, so the supervisor runs cheap stand-ins: this test binary re-executed as
// an HTTP server that answers /readyz (like an API) or as a process that keeps crashing.
package scripts

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Roles of the re-executed test binary.
const (
	roleEnv = "HOOKD_SUPERVISE_TEST_ROLE"
	markEnv = "HOOKD_SUPERVISE_TEST_MARK" // inherited by every process a run starts: finds leftovers
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "serve":
		serve(os.Getenv("ADDR"))
	case "crash":
		time.Sleep(100 * time.Millisecond)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// serve answers /readyz with its pid and the pid of a child it keeps (as scripts/temporal-server.sh
// keeps its server), so the test sees both who answers and what a crash leaves behind.
func serve(addr string) {
	child := exec.Command("sleep", "300")
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d %d", os.Getpid(), child.Process.Pid)
	})
	// The old process's socket may linger for a moment after a SIGKILL.
	for i := 0; ; i++ {
		err := http.ListenAndServe(addr, nil)
		if i > 50 {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// harness is cluster.sh's skeleton (the same lib.sh, supervise.sh, traps and final wait) on the
// stand-ins: two APIs and a worker that exits 100 ms after each start.
const harness = `set -euo pipefail
LIB_NAME=cluster LIB_LOG_DIR="$STATE"
source "$SCRIPTS/lib.sh"
source "$SCRIPTS/supervise.sh"
supervise_traps
for i in 1 2; do
  addr_var=API${i}_ADDR
  HOOKD_SUPERVISE_TEST_ROLE=serve ADDR=${!addr_var} supervise "api-$i" "$STATE/api-$i.log" "$DUMMY"
  wait_for "api $i" "$LAST_PID" 20 port_open "${!addr_var##*:}"
done
HOOKD_SUPERVISE_TEST_ROLE=crash supervise worker-1 "$STATE/worker-1.log" "$DUMMY"
say "ready"
set +e
supervise_forever
say "every supervisor is gone"
exit 1
`

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type cluster struct {
	cmd        *exec.Cmd
	out        *syncBuffer
	state      string
	api1, api2 string
	mark       string
	done       chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc to find leftover processes")
	}
	for _, tool := range []string{"bash", "setsid", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	scripts, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dummy, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "cluster-harness.sh")
	if err := os.WriteFile(script, []byte(harness), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &cluster{out: &syncBuffer{}, state: dir, api1: freeAddr(t), api2: freeAddr(t),
		mark: strconv.FormatInt(time.Now().UnixNano(), 36), done: make(chan error, 1)}
	c.cmd = exec.Command("bash", script)
	c.cmd.Env = append(os.Environ(), "STATE="+dir, "SCRIPTS="+scripts, "DUMMY="+dummy,
		"API1_ADDR="+c.api1, "API2_ADDR="+c.api2, markEnv+"="+c.mark,
		"HOOKD_RESTART_MIN_MS=200", "HOOKD_RESTART_MAX_MS=800", "HOOKD_RESTART_RESET_MS=1500")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		// A failed test must not leave its processes behind either.
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
		}
		for _, pid := range c.leftovers() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("harness output:\n%s", c.out.String())
		}
	})
	c.waitOutput(t, "cluster: ready", 30*time.Second)
	return c
}

func (c *cluster) waitOutput(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(c.out.String(), want) {
		select {
		case err := <-c.done:
			c.done <- err // for the cleanup
			t.Fatalf("the harness exited (%v) before printing %q", err, want)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q after %s", want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leftovers lists the live processes (zombies excluded) that carry this run's mark.
func (c *cluster) leftovers() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(env, []byte(markEnv+"="+c.mark+"\x00")) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

var client = &http.Client{Timeout: time.Second}

// ready returns the pids in addr's /readyz answer, or an error.
func ready(addr string) (pid, child int, err error) {
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	_, err = fmt.Sscanf(string(body), "%d %d", &pid, &child)
	return pid, child, err
}

func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && len(stat) > i+2 && stat[i+2] != 'Z'
}

// killAndWaitBack kills api-1's process like the OOM killer would and waits until another
// process answers on its address; it returns the delay the supervisor logged for the restart.
func (c *cluster) killAndWaitBack(t *testing.T, n int) string {
	t.Helper()
	pid, child, err := ready(c.api1)
	if err != nil {
		t.Fatalf("api-1 before kill %d: %v", n, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if now, _, err := ready(c.api1); err == nil && now != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("api-1 did not come back within 15s after kill %d", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if alive(child) {
		t.Errorf("kill %d: the killed api-1's child %d is still running", n, child)
	}
	re := regexp.MustCompile(fmt.Sprintf(`cluster: api-1 \(pid %d\) exited: killed by SIGKILL after [0-9.]+s; restart %d in ([0-9.]+s)`, pid, n))
	m := re.FindStringSubmatch(c.out.String())
	if m == nil {
		t.Fatalf("kill %d: no restart line for pid %d matching %s", n, pid, re)
	}
	return m[1]
}

// TestClusterSupervisorRestartsWithBackoff: a process of the topology killed with kill -9 comes
// back (its leftovers cleared) while the others keep answering; restarts back off exponentially up
// to the cap and start from the minimum again after a process stayed up; SIGTERM to the script
// stops everything.
func TestClusterSupervisorRestartsWithBackoff(t *testing.T) {
	c := startCluster(t)
	api2pid, _, err := ready(c.api2)
	if err != nil {
		t.Fatal(err)
	}

	// api-2 must answer throughout.
	stop := make(chan struct{})
	var failures []string
	var polls int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
			}
			polls++
			if pid, _, err := ready(c.api2); err != nil || pid != api2pid {
				failures = append(failures, fmt.Sprintf("pid %d, %v", pid, err))
			}
		}
	}()

	if got := c.killAndWaitBack(t, 1); got != "0.2s" {
		t.Errorf("first restart delay %s, want 0.2s", got)
	}
	if got := c.killAndWaitBack(t, 2); got != "0.4s" {
		t.Errorf("second restart in a row: delay %s, want 0.4s (doubled)", got)
	}
	time.Sleep(1700 * time.Millisecond) // longer than HOOKD_RESTART_RESET_MS
	if got := c.killAndWaitBack(t, 3); got != "0.2s" {
		t.Errorf("restart after staying up: delay %s, want 0.2s (reset)", got)
	}

	// The worker that keeps crashing: delays double up to the cap, each exit logged with its status.
	c.waitOutput(t, "worker-1 (pid", 10*time.Second)
	re := regexp.MustCompile(`cluster: worker-1 \(pid \d+\) exited: exit status 3 after [0-9.]+s; restart (\d+) in ([0-9.]+s)`)
	deadline := time.Now().Add(15 * time.Second)
	var delays []string
	for {
		delays = delays[:0]
		for _, m := range re.FindAllStringSubmatch(c.out.String(), -1) {
			delays = append(delays, m[2])
		}
		if len(delays) >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []string{"0.2s", "0.4s", "0.8s", "0.8s", "0.8s"}
	if len(delays) < len(want) || strings.Join(delays[:len(want)], " ") != strings.Join(want, " ") {
		t.Errorf("worker-1 restart delays %v, want %v first", delays, want)
	}
	log, _ := os.ReadFile(filepath.Join(c.state, "worker-1.log"))
	if !strings.Contains(string(log), "worker-1 (pid") {
		t.Errorf("worker-1.log does not record its restarts:\n%s", log)
	}

	close(stop)
	wg.Wait()
	if len(failures) > 0 || polls < 20 {
		t.Errorf("api-2 failed %d of %d polls while api-1 was killed: %v", len(failures), polls, failures)
	}

	c.stopAndCheck(t, syscall.SIGTERM, 143)
}

// TestClusterSupervisorCtrlC: SIGINT (Ctrl-C) stops the whole topology and leaves no process.
func TestClusterSupervisorCtrlC(t *testing.T) {
	c := startCluster(t)
	if _, _, err := ready(c.api1); err != nil {
		t.Fatal(err)
	}
	c.stopAndCheck(t, syscall.SIGINT, 130)
}

func (c *cluster) stopAndCheck(t *testing.T, sig syscall.Signal, wantStatus int) {
	t.Helper()
	if len(c.leftovers()) < 5 {
		t.Fatalf("expected the harness, two APIs and their children running, found %v", c.leftovers())
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err // for the cleanup
		if code := c.cmd.ProcessState.ExitCode(); code != wantStatus {
			t.Errorf("after %s the script exited %d (%v), want %d", sig, code, err, wantStatus)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the script did not exit within 30s of %s", sig)
	}
	if left := c.leftovers(); len(left) > 0 {
		var ps []string
		for _, pid := range left {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			ps = append(ps, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
		t.Errorf("processes left after %s: %v", sig, ps)
	}
	if _, _, err := ready(c.api1); err == nil {
		t.Errorf("api-1 still answers after %s", sig)
	}
}

// TestClusterScriptSupervisesEveryProcess: cluster.sh is the harness above with the real programs:
// every long-running process goes through supervise, the traps and the final wait are the
// supervisor's (the script once ended in wait -n: the first crash stopped everything).
func TestClusterScriptSupervisesEveryProcess(t *testing.T) {
	src, err := os.ReadFile("cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(src)
	for _, bad := range []string{"start_bg ", "wait -n", "stop_all\n"} {
		if strings.Contains(script, bad) {
			t.Errorf("cluster.sh uses %q", bad)
		}
	}
	for _, want := range []string{"source scripts/supervise.sh", "supervise_traps", "supervise_forever",
		"supervise temporal ", "supervise temporal-ui ", "supervise mailpit ", "supervise jaeger ",
		`supervise "worker-$i"`, `supervise "api-$i"`} {
		if !strings.Contains(script, want) {
			t.Errorf("cluster.sh lacks %q", want)
		}
	}
}
