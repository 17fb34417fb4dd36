package integration

import (
	"bufio"
	"context"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
)

// The operator commands of the hookd binary, against a running API.
func TestOperatorCLI(t *testing.T) {
	s := newStack(t)
	app := s.newApp("operator")
	var healthy atomic.Bool
	r := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		if healthy.Load() {
			return 200, nil, "ok"
		}
		return 500, nil, "broken"
	})
	t.Cleanup(r.Close)
	s.subscribe(app.Key, map[string]any{"url": r.URL, "eventTypes": []string{"cli"}, "retryPolicy": map[string]any{"maxAttempts": 1}})
	start := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "cli-1", "type": "cli"}), http.StatusCreated)
	ds := s.waitDeliveries(app.Key, "cli-1", 1, 20*time.Second)
	id := ds[0]["id"].(string)

	hookd := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, hookdBinary(t), args...)
		// Client commands talk to the API only: they must work without the encryption key.
		cmd.Env = append(environWithout("HOOKD_ENCRYPTION_KEY"), "HOOKD_API_URL="+s.URL, "HOOKD_API_KEY="+app.Key)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hookd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := hookd("deliveries", "-status", "failed"); !strings.Contains(out, id) || !strings.Contains(out, "HTTP 500: broken") {
		t.Errorf("deliveries:\n%s", out)
	}
	if out := hookd("delivery", id); !strings.Contains(out, "status failed") || !strings.Contains(out, "1  ") || !strings.Contains(out, "500") {
		t.Errorf("delivery:\n%s", out)
	}
	healthy.Store(true)
	if out := hookd("replay", "-failed"); !strings.Contains(out, "replayed 1 of 1 deliveries") || !strings.Contains(out, "replaying 1/1") {
		t.Errorf("replay:\n%s", out)
	}
	s.waitDeliveries(app.Key, "cli-1", 2, 20*time.Second)
	if r.Count() != 2 {
		t.Errorf("%d requests after the replay", r.Count())
	}
	// tail runs until stopped: read what it prints until the event shows (a loaded machine may
	// take a while to start it), then stop it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookdBinary(t), "tail", "-since", start, "-interval", "200ms")
	cmd.Env = append(environWithout("HOOKD_ENCRYPTION_KEY"), "HOOKD_API_URL="+s.URL, "HOOKD_API_KEY="+app.Key)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(stdout)
	found := false
	for !found && sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		found = strings.Contains(sc.Text(), "cli-1 cli")
	}
	cancel()
	_ = cmd.Wait()
	if !found {
		t.Errorf("tail:\n%s", seen.String())
	}
}
