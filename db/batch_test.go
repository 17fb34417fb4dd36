package db

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
)

// Calls that arrive while the statements under way run share the next one; each caller gets its
// own result; a row the server refuses fails only its own caller.
func TestBatcherSharesStatements(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	failed := 0 // the size of the statement that failed on 13, whose calls then ran one by one
	b := newBatcher(func(int) int { return 1 }, func(ctx context.Context, ins []int) ([]string, error) {
		mu.Lock()
		sizes = append(sizes, len(ins))
		mu.Unlock()
		<-release
		out := make([]string, len(ins))
		for i, in := range ins {
			if in == 13 {
				if len(ins) > 1 {
					mu.Lock()
					failed = len(ins)
					mu.Unlock()
				}
				return nil, &pq.Error{Code: "23514", Message: "check violation"}
			}
			out[i] = fmt.Sprint("r", in)
		}
		return out, nil
	})
	const n = 100
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = b.do(context.Background(), i)
		}()
	}
	// Wait until every call is in one of the statements under way (all flushers busy) or queued.
	deadline := time.Now().Add(10 * time.Second)
	want := 0 // statements: one per busy flusher, and one for whatever queued behind them
	for {
		b.mu.Lock()
		queued, active := len(b.queue), b.active
		b.mu.Unlock()
		mu.Lock()
		running := 0
		for _, s := range sizes {
			running += s
		}
		mu.Unlock()
		if running+queued == n && len(sizes) == active {
			if want = active; queued > 0 {
				want++
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls never all queued: %d flushers, %d running, %d queued", active, running, queued)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i := range n {
		switch {
		case i == 13 && errs[i] == nil:
			t.Errorf("input 13: no error, got %q", got[i])
		case i != 13 && (errs[i] != nil || got[i] != fmt.Sprint("r", i)):
			t.Errorf("input %d: got %q, %v", i, got[i], errs[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The flushers' first statements (at most batchFlushers), then everything that queued behind
	// them in one more, plus the calls of the statement that failed, run again one by one.
	if first := len(sizes) - failed; first != want || want > batchFlushers+1 {
		t.Errorf("statement sizes %v (%d re-run one by one): want %d statements", sizes, failed, want)
	}
	// A flusher ends once it finds the queue empty, just after answering its last calls.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		active, queued := b.active, len(b.queue)
		b.mu.Unlock()
		if active == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the calls: %d flushers, %d queued", active, queued)
		}
	}
}

// A caller whose context ends stops waiting; the others are served.
func TestBatcherCallerGivesUp(t *testing.T) {
	release := make(chan struct{})
	b := newBatcher(func(int) int { return 1 }, func(ctx context.Context, ins []int) ([]int, error) {
		<-release
		return ins, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.do(ctx, 1); done <- err }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(release)
	if v, err := b.do(context.Background(), 2); err != nil || v != 2 {
		t.Fatalf("next caller: %d, %v", v, err)
	}
}

func TestRounds(t *testing.T) {
	calls := [][]string{{"a", "b"}, {"c"}, {"b"}, {"d"}, {"b", "c"}}
	got := fmt.Sprint(rounds(calls, func(c []string) []string { return c }))
	if want := "[[0 1 3] [2] [4]]"; got != want {
		t.Fatalf("rounds: %s, want %s", got, want)
	}
}
