package integration

import (
	"fmt"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The production shape: two `hookd api` and two `hookd worker` processes on one task queue.
// kill -9 one worker and one API process mid-run: every event either API accepted is delivered to
// every subscriber, no attempt is POSTed or recorded twice, and the API that stayed up answers
// every request throughout. `make test-cluster` runs it against a real Temporal server.
func TestScaleOutSurvivesKills(t *testing.T) {
	s := startStack(t, false) // sets up the app; the run goes through the processes below
	app := s.newApp("scale-out")
	receivers := s.halfSlowReceivers(app, "scale", 300*time.Millisecond)
	apis := make([]*stack, 2)
	var apiCmds, workerCmds []*exec.Cmd
	for i := range apis {
		addr := freePort(t)
		apiCmds = append(apiCmds, startHookd(t, s.Cfg, "api", "HOOKD_HTTP_ADDR="+addr, "HOOKD_OPERATOR_KEY="+operatorKey,
			"HOOKD_RECONCILE_INTERVAL=1s", "HOOKD_RECONCILE_GRACE=3s"))
		apis[i] = &stack{t: t, URL: "http://" + addr}
		workerCmds = append(workerCmds, startWorker(t, s.Cfg))
	}
	kill := func(c *exec.Cmd) {
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.Wait()
	}
	for i, a := range apis {
		eventually(t, 30*time.Second, fmt.Sprintf("API process %d up", i), func() bool {
			resp, err := http.Get(a.URL + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	// Both APIs take events; the first must answer every one of its requests, kills included.
	const perAPI = 60
	var mu sync.Mutex
	accepted := map[string]bool{}
	var failedOnSurvivor []string
	var wg sync.WaitGroup
	for i, a := range apis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perAPI; n++ {
				id := fmt.Sprintf("so-%d-%02d", i, n)
				r, err := a.try("POST", "/v1/events", app.Key, map[string]any{"id": id, "type": "scale"})
				mu.Lock()
				switch {
				case err == nil && r.Status == http.StatusCreated:
					accepted[id] = true
				case i == 0:
					failedOnSurvivor = append(failedOnSurvivor, fmt.Sprintf("%s: %v %d %s", id, err, r.Status, r.Raw))
				}
				mu.Unlock()
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	total := func() int {
		n := 0
		for _, r := range receivers {
			n += r.Count()
		}
		return n
	}
	eventually(t, 60*time.Second, "deliveries under way", func() bool { return total() >= 60 })
	kill(workerCmds[0])
	kill(apiCmds[1])
	killedAt := total()
	wg.Wait()
	if len(failedOnSurvivor) > 0 {
		t.Errorf("the API that stayed up failed %d requests: %v", len(failedOnSurvivor), failedOnSurvivor)
	}
	// An event the killed API stored may have lost its answer: it counts, and must be delivered too
	// (its workflow started, or the surviving API's reconciler starts it).
	n := countRows(t, `SELECT count(*) FROM events WHERE app_id = $1 AND client_id LIKE 'so-%'`, app.ID)
	if len(accepted) < perAPI+1 || n < len(accepted) {
		t.Fatalf("%d events accepted, %d stored", len(accepted), n)
	}
	eventually(t, 3*time.Minute, "every accepted event delivered", func() bool {
		return countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1 AND status = 'succeeded'`, app.ID+"/so-%") == n*4
	})
	for i, r := range receivers {
		seen := map[string]bool{}
		for _, q := range r.Requests() {
			seen[q.Header.Get("webhook-id")] = true
		}
		for id := range accepted {
			if !seen[app.ID+"/"+id] {
				t.Errorf("receiver %d never got %s", i, id)
			}
		}
	}
	if d := countRows(t, `SELECT count(*) FROM deliveries WHERE event_id LIKE $1`, app.ID+"/so-%"); d != n*4 {
		t.Errorf("%d delivery rows, want %d", d, n*4)
	}
	unsent := assertEveryPOSTInLedger(t, app.ID+"/so-%", receivers...)
	t.Logf("%d events accepted (%d by the API that was killed), %d stored; killed a worker and an API after %d POSTs; %d interrupted rows without a POST",
		len(accepted), len(accepted)-perAPI, n, killedAt, unsent)
}
