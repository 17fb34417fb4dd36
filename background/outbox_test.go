package background

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx/types"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/workflows"
)

// fakeEngine refuses every start while down, and records the starts it accepts.
type fakeEngine struct {
	mu     sync.Mutex
	down   bool
	starts map[string]workflows.EventInput
}

func (e *fakeEngine) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return nil, errors.New("engine unreachable")
	}
	if e.starts == nil {
		e.starts = map[string]workflows.EventInput{}
	}
	in, _ := args[0].(workflows.EventInput)
	e.starts[opts.ID] = in
	return nil, nil
}

func (e *fakeEngine) SignalWorkflow(context.Context, string, string, string, any) error { return nil }
func (e *fakeEngine) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return nil, nil
}
func (e *fakeEngine) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	return nil, nil
}

func (e *fakeEngine) setDown(down bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = down
}

func (e *fakeEngine) started() map[string]workflows.EventInput {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]workflows.EventInput, len(e.starts))
	for k, v := range e.starts {
		out[k] = v
	}
	return out
}

// With the engine down, the outbox holds what it needs to find each event again, not the event:
// 400 events of 256 KiB waiting for their start grow the API's heap by far less than their
// 100 MiB of payload (today's queue of whole rows held all of it). Once the engine is back,
// every queued event's workflow starts with the event's own input and the event is marked started.
func TestOutboxHoldsIDsNotPayloads(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	tdb, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tdb.Drop(ctx) })
	if _, err := tdb.DB.ExecContext(ctx, `INSERT INTO apps (id, name, secret) VALUES ('app-1', 'one', 'plain')`); err != nil {
		t.Fatal(err)
	}
	fake := &fakeEngine{down: true}
	repo := db.NewRepo(tdb.DB, nil)
	o := NewOutbox(repo, engine.New(fake, config.Config{TaskQueue: "q"}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	octx, stop := context.WithCancel(ctx)
	wait := o.Run(octx)
	t.Cleanup(func() { // before the database is dropped: the outbox ends first, as in service.App.Stop
		stop()
		done := make(chan struct{})
		go func() { wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the outbox did not end after its context")
		}
	})

	const n, size = 400, 256 << 10
	publish := func(i int) {
		t.Helper()
		// A fresh payload each time, as each publish reads its own body.
		payload := `{"n":` + fmt.Sprint(i) + `,"pad":"` + strings.Repeat("x", size) + `"}`
		key := delivery.EventKey("app-1", fmt.Sprintf("big-%03d", i))
		stored, inserted, err := repo.InsertEvent(ctx, db.Event{ID: key, AppID: "app-1", Type: "t",
			Payload: types.JSONText(payload), WorkflowID: delivery.EventWorkflowID(key)})
		if err != nil || !inserted {
			t.Fatalf("insert %s: %v (inserted %v)", key, err, inserted)
		}
		if err := o.Dispatch(ctx, stored); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	publish(0) // warms up the pool, the statements and the starters
	time.Sleep(200 * time.Millisecond)
	before := heap()
	for i := 1; i < n; i++ {
		publish(i)
	}
	time.Sleep(500 * time.Millisecond) // the starters have taken what they take and wait for the engine
	after := heap()
	growth := int64(after) - int64(before)
	t.Logf("heap grew by %.1f MiB for %d queued events of %d KiB (%.0f MiB of payload)",
		float64(growth)/(1<<20), n-1, size>>10, float64((n-1)*size)/(1<<20))
	// The starters may each hold the event they are trying to start (outboxStarters of them);
	// the queue itself must hold next to nothing.
	if limit := int64(outboxStarters*size*2 + 8<<20); growth > limit {
		t.Errorf("with the engine down, the outbox grew the heap by %d MiB (limit %d MiB): it holds payloads",
			growth>>20, limit>>20)
	}

	fake.setDown(false)
	deadline := time.Now().Add(30 * time.Second)
	for len(fake.started()) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	starts := fake.started()
	for i := range n {
		key := delivery.EventKey("app-1", fmt.Sprintf("big-%03d", i))
		in, ok := starts[delivery.EventWorkflowID(key)]
		if !ok || in.EventID != key || in.EventType != "t" {
			t.Errorf("%s: started %v with %+v", key, ok, in)
		}
	}
	if t.Failed() {
		return
	}
	for time.Now().Before(deadline) {
		var unmarked int
		if err := tdb.DB.GetContext(ctx, &unmarked, `SELECT count(*) FROM events WHERE started_at IS NULL`); err != nil {
			t.Fatal(err)
		}
		if unmarked == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Error("started events not marked started")
}
