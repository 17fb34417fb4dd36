package db

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lib/pq"
)

// batcher merges concurrent calls of one repository write into shared statements: group commit
// at the application's level. PostgreSQL spends most of a small write on the statement and its
// commit (parse, plan, a WAL flush), not on the row, so under load many callers share one.
//
// A call that finds fewer than batchFlushers statements under way starts one at once, so a lone call
// waits for nothing; calls that arrive while they all run queue up and go together in the next.
// No goroutine outlives the queue: a flusher ends when it finds the queue empty.
type batcher[In, Out any] struct {
	// run executes one batch and returns one result per input, in order. An error fails the whole
	// batch; the batcher then runs its calls one by one, so one bad input fails only its caller.
	run    func(ctx context.Context, ins []In) ([]Out, error)
	weight func(In) int // an input's rows; a statement takes inputs up to batchMaxRows of them

	mu     sync.Mutex
	queue  []*batchCall[In, Out]
	active int
}

type batchCall[In, Out any] struct {
	in   In
	out  Out
	err  error
	done chan struct{}
}

const (
	// batchFlushers is how many statements of one kind run at once: enough to keep PostgreSQL's
	// cores busy, few enough that a burst forms batches instead of queueing for connections.
	batchFlushers = 4
	// batchMaxRows bounds the rows of one statement (a larger single input still goes alone).
	batchMaxRows = 1000
)

// batchTimeout bounds one shared statement: it runs on behalf of callers that may have gone.
const batchTimeout = 30 * time.Second

func newBatcher[In, Out any](weight func(In) int, run func(context.Context, []In) ([]Out, error)) *batcher[In, Out] {
	return &batcher[In, Out]{run: run, weight: weight}
}

// do runs in with whatever other calls are waiting. A caller whose ctx ends stops waiting; its
// input may still be written by the statement under way, as if its answer had been lost.
func (b *batcher[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &batchCall[In, Out]{in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	start := b.active < batchFlushers
	if start {
		b.active++
	}
	b.mu.Unlock()
	if start {
		go b.flush(context.WithoutCancel(ctx))
	}
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		var zero Out
		return zero, ctx.Err()
	}
}

// flush runs batches until the queue is empty.
func (b *batcher[In, Out]) flush(ctx context.Context) {
	for {
		b.mu.Lock()
		n, rows := 0, 0
		for n < len(b.queue) {
			w := b.weight(b.queue[n].in)
			if n > 0 && rows+w > batchMaxRows {
				break
			}
			rows += w
			n++
		}
		if n == 0 {
			b.active--
			b.mu.Unlock()
			return
		}
		calls := make([]*batchCall[In, Out], n)
		copy(calls, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		b.runBatch(ctx, calls)
	}
}

func (b *batcher[In, Out]) runBatch(ctx context.Context, calls []*batchCall[In, Out]) {
	ins := make([]In, len(calls))
	for i, c := range calls {
		ins[i] = c.in
	}
	bctx, cancel := context.WithTimeout(ctx, batchTimeout)
	outs, err := b.run(bctx, ins)
	cancel()
	var pe *pq.Error
	if err != nil && len(calls) > 1 && errors.As(err, &pe) { // the server refused a row, not the connection
		for _, c := range calls {
			b.runBatch(ctx, []*batchCall[In, Out]{c})
		}
		return
	}
	for i, c := range calls {
		if err != nil {
			c.err = err
		} else {
			c.out = outs[i]
		}
		close(c.done)
	}
}
