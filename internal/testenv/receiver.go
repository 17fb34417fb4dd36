package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Request is one POST a receiver got.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// Receiver is a real HTTP server on loopback that answers with a script and records every request.
type Receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []Request
	respond func(n int, r *http.Request) (status int, header http.Header, body string)
	arrived chan struct{}
}

// NewReceiver answers the n-th request (from 1) with respond; nil answers 200.
func NewReceiver(respond func(n int, r *http.Request) (int, http.Header, string)) *Receiver {
	rc := &Receiver{respond: respond, arrived: make(chan struct{}, 1<<16)}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	return rc
}

// Statuses answers the n-th request with statuses[n-1], and the last one after that.
func Statuses(statuses ...int) func(int, *http.Request) (int, http.Header, string) {
	return func(n int, _ *http.Request) (int, http.Header, string) {
		if n > len(statuses) {
			n = len(statuses)
		}
		return statuses[n-1], nil, "status " + http.StatusText(statuses[n-1])
	}
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()})
	n := len(rc.reqs)
	rc.mu.Unlock()
	status, hdr, text := http.StatusOK, http.Header(nil), "ok"
	if rc.respond != nil {
		status, hdr, text = rc.respond(n, r)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(status)
	io.WriteString(w, text)
	rc.arrived <- struct{}{}
}

// Requests returns a copy of what arrived so far.
func (rc *Receiver) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.reqs...)
}

// Count is how many requests arrived.
func (rc *Receiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}
