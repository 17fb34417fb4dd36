package main

import (
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/signature"
)

// receiver is a loopback HTTP server that answers 200 at once and reports each arrival (the
// subscriber index in its path, the webhook-id header and the time the whole body had arrived).
type receiver struct {
	URL    string
	srv    *http.Server
	ln     net.Listener
	arrive func(idx int, id string, at time.Time)
}

// maxListeners bounds the loopback servers of a run. Subscribers beyond it share servers and are
// told apart by their URL's path: 50,000 listeners would not fit in the file descriptor limit nor
// leave ephemeral ports for the connections to them.
const maxListeners = 64

// startReceivers starts the servers for subs subscribers: one per subscriber up to maxListeners.
// Subscriber i's URL is hookURL(rs, i).
func startReceivers(subs int, arrive func(idx int, id string, at time.Time)) ([]*receiver, error) {
	n := min(subs, maxListeners)
	out := make([]*receiver, 0, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeReceivers(out)
			return nil, err
		}
		rc := &receiver{URL: "http://" + ln.Addr().String(), ln: ln, arrive: arrive}
		rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() {
			if err := rc.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				say("receiver %d: %v", i, err)
			}
		}()
		out = append(out, rc)
	}
	return out, nil
}

// hookURL is subscriber i's URL: its own path on one of the servers.
func hookURL(rs []*receiver, i int) string {
	return rs[i%len(rs)].URL + "/hook/" + strconv.Itoa(i)
}

var okBody = []byte("ok")

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	at := time.Now()
	if rc.arrive != nil {
		// The subscriber is the one whose URL this is; a path that names none arrives as -1,
		// which the tracker does not count.
		idx := -1
		if s, ok := strings.CutPrefix(r.URL.Path, "/hook/"); ok {
			if n, err := strconv.Atoi(s); err == nil {
				idx = n
			}
		}
		// hookd's webhook-id is "<app id>/<event id>"; the bench knows events by their own id.
		rc.arrive(idx, delivery.ClientEventID(r.Header.Get(signature.HeaderID)), at)
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

func closeReceivers(rs []*receiver) {
	for _, rc := range rs {
		rc.srv.Close()
	}
}

// tracker matches each delivery's arrival (receiver, webhook-id) with the time the API answered 201
// for that event id, in whichever order the two come, and keeps only events still in flight so a
// long soak does not grow with its own bookkeeping.
type tracker struct {
	subs int

	mu       sync.Mutex
	inflight map[string]*eventState
	lat      hist // API answer -> receiver arrival, per delivery
	early    int64
	first    time.Time
	last     time.Time

	doneIDs  map[string]struct{}
	doneFIFO []string
	doneNext int

	arrived    atomic.Int64 // distinct (receiver, event) arrivals
	duplicates atomic.Int64 // a (receiver, event) pair that arrived again
}

type eventState struct {
	answered time.Time
	got      []time.Time // by receiver; zero until it arrives
	n        int
}

func newTracker(subs int) *tracker {
	return &tracker{subs: subs, inflight: map[string]*eventState{}}
}

func (t *tracker) state(id string) *eventState {
	s := t.inflight[id]
	if s == nil {
		s = &eventState{got: make([]time.Time, t.subs)}
		t.inflight[id] = s
	}
	return s
}

// answered records the time the API's 201 for event id reached the poster.
func (t *tracker) answered(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(id)
	s.answered = at
	for _, g := range s.got {
		if !g.IsZero() {
			t.observe(at, g)
		}
	}
	if s.n == t.subs {
		delete(t.inflight, id)
		t.markDone(id)
	}
}

// arrive records a delivery of event id at receiver idx.
func (t *tracker) arrive(idx int, id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first.IsZero() || at.Before(t.first) {
		t.first = at
	}
	if at.After(t.last) {
		t.last = at
	}
	s, ok := t.inflight[id]
	if !ok {
		// Either the first arrival of an event not answered yet, or a repeat after every receiver
		// already had it (its state is gone).
		if t.done(id) {
			t.duplicates.Add(1)
			return
		}
		s = t.state(id)
	}
	if idx < 0 || idx >= len(s.got) {
		return
	}
	if !s.got[idx].IsZero() {
		t.duplicates.Add(1)
		return
	}
	s.got[idx] = at
	s.n++
	t.arrived.Add(1)
	if !s.answered.IsZero() {
		t.observe(s.answered, at)
		if s.n == t.subs {
			delete(t.inflight, id)
			t.markDone(id)
		}
	}
}

// done tells whether event id was complete, from a rolling set of the last ringSize complete
// events: enough to tell a duplicate from a first arrival without keeping every id of a soak.
func (t *tracker) done(id string) bool {
	_, ok := t.doneIDs[id]
	return ok
}

func (t *tracker) markDone(id string) {
	if t.doneIDs == nil {
		t.doneIDs, t.doneFIFO = map[string]struct{}{}, make([]string, ringSize)
	}
	if old := t.doneFIFO[t.doneNext]; old != "" {
		delete(t.doneIDs, old)
	}
	t.doneFIFO[t.doneNext] = id
	t.doneIDs[id] = struct{}{}
	t.doneNext = (t.doneNext + 1) % ringSize
}

const ringSize = 1 << 15

func (t *tracker) observe(answered, arrived time.Time) {
	d := arrived.Sub(answered)
	if d < 0 {
		t.early++
		d = 0
	}
	t.lat.add(d)
}

// snapshot returns what the tracker saw.
func (t *tracker) snapshot() (lat hist, early int64, first, last time.Time, pendingUnanswered int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.inflight {
		if s.answered.IsZero() {
			pendingUnanswered += int64(s.n)
		}
	}
	return t.lat.clone(), t.early, t.first, t.last, pendingUnanswered
}

// hist is a log-bucketed latency histogram (1% wide buckets from 1 µs), so percentiles of a soak
// need no per-delivery memory. Percentiles are accurate to about 1%.
type hist struct {
	counts []uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const histGrowth = 1.01

var logGrowth = math.Log(histGrowth)

func (h *hist) add(d time.Duration) {
	us := max(1, float64(d)/float64(time.Microsecond))
	i := int(math.Log(us) / logGrowth)
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]uint64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *hist) clone() hist {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return c
}

// quantile returns the q-quantile (0..1): the geometric middle of the bucket it falls in.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			us := math.Pow(histGrowth, float64(i)+0.5)
			return min(time.Duration(us*float64(time.Microsecond)), h.max)
		}
	}
	return h.max
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P95Ms  float64 `json:"p95Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func (h *hist) summary() Latency {
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 2) }
	l := Latency{Count: h.n, P50Ms: ms(h.quantile(0.50)), P95Ms: ms(h.quantile(0.95)), P99Ms: ms(h.quantile(0.99)), MaxMs: ms(h.max)}
	if h.n > 0 {
		l.MeanMs = ms(h.sum / time.Duration(h.n))
	}
	return l
}

// syncHist is a hist safe for concurrent adds.
type syncHist struct {
	mu sync.Mutex
	h  hist
}

func (s *syncHist) add(d time.Duration) {
	s.mu.Lock()
	s.h.add(d)
	s.mu.Unlock()
}

func (s *syncHist) summary() Latency {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h.summary()
}
