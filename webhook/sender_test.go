package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func send(t *testing.T, s *Sender, url string) Result {
	t.Helper()
	r, err := s.Send(context.Background(), Request{URL: url, MessageID: "msg_1", Attempt: 1, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		Body: []byte(`{"a":1}`), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Whatever a receiver answers, what is kept of it is valid UTF-8 without NUL, within its bounds.
func TestSendStoresHostileAnswersSafely(t *testing.T) {
	bigHeaders := http.Header{"X-Huge": {strings.Repeat("h", 100<<10)}, "Location": {strings.Repeat("/l\xe9", 1000)}}
	for i := range 300 {
		bigHeaders.Set(fmt.Sprintf("X-Many-%03d", i), strings.Repeat("m", 100))
	}
	cases := []struct {
		name   string
		header http.Header
		body   string
		want   string // the stored excerpt; "" to check only validity
	}{
		{"binary", http.Header{"Content-Type": {"application/octet-stream"}}, strings.Repeat("\x00\x01\x8b\xff", 1000), "[binary body, 4000 bytes, not shown]"},
		{"endless binary", nil, strings.Repeat("\x00\xff", 50000), "[binary body, more than 67584 bytes, not shown]"},
		{"nul", nil, "ok\x00done", "ok\uFFFDdone"},
		{"invalid byte", nil, "bad \xff byte", "bad \uFFFD byte"},
		{"latin1", http.Header{"Content-Type": {"text/plain; charset=ISO-8859-1"}}, "caf\xe9", "café"},
		{"windows-1252", http.Header{"Content-Type": {"text/plain; charset=windows-1252"}}, "\x93quoted\x94", "\u201cquoted\u201d"},
		{"utf8 labelled latin1", http.Header{"Content-Type": {"text/plain; charset=iso-8859-1"}}, "déjà", "déjà"},
		{"split rune", nil, "a" + strings.Repeat("€", 1000), "a" + strings.Repeat("€", (MaxBodyExcerpt-1)/3)},
		{"latin1 grows", http.Header{"Content-Type": {"text/plain; charset=latin1"}}, strings.Repeat("\xe9", 3000), ""},
		{"big headers", bigHeaders, "ok", "ok"},
	}
	s := NewSender(nil, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for k, vs := range c.header {
					w.Header()[k] = vs
				}
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			r := send(t, s, srv.URL)
			if !r.Succeeded() {
				t.Fatalf("%+v", r)
			}
			if c.want != "" && r.ResponseBody != c.want {
				t.Errorf("stored %.80q, want %.80q", r.ResponseBody, c.want)
			}
			if !utf8.ValidString(r.ResponseBody) || strings.ContainsRune(r.ResponseBody, 0) || len(r.ResponseBody) > MaxBodyExcerpt {
				t.Errorf("unsafe excerpt of %d bytes: %.80q", len(r.ResponseBody), r.ResponseBody)
			}
			for k, v := range r.ResponseHeaders {
				if !utf8.ValidString(v) || len(v) > MaxHeaderValue {
					t.Errorf("unsafe header %s of %d bytes", k, len(v))
				}
			}
			if reason := (Result{Status: 500, ResponseBody: r.ResponseBody}).Reason(); !utf8.ValidString(reason) || len(reason) > 220 {
				t.Errorf("unsafe reason %q", reason)
			}
		})
	}
}

// Response headers above MaxResponseHeaderBytes fail the attempt with a reason saying so.
func TestSendRefusesHugeResponseHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := range 4 {
			w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("b", 100<<10))
		}
	}))
	defer srv.Close()
	r := send(t, NewSender(nil, nil), srv.URL)
	if r.Succeeded() || r.Err != "response headers larger than 256 KiB: not accepted" {
		t.Errorf("%+v", r)
	}
}

// A transport error that quotes the peer's bytes (a malformed header line) is stored safe and short.
func TestSendErrorTextIsSafe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Bad", "a\x00\xff"+strings.Repeat("z", 10000))
	}))
	defer srv.Close()
	r := send(t, NewSender(nil, nil), srv.URL)
	if r.Err == "" || !utf8.ValidString(r.Err) || strings.ContainsRune(r.Err, 0) || len(r.Err) > MaxErrorText {
		t.Errorf("error text %q", r.Err)
	}
}

// A receiver that closes idle connections after 1 s (Node's default is 5 s), posted to about
// once a second: the sender reuses a connection the receiver is closing, and the POST is reset.
// No attempt may fail for it, and none may arrive twice.
func TestSendSurvivesKeepAliveRace(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 20 s")
	}
	var got atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	srv.Config.IdleTimeout = time.Second
	srv.Start()
	defer srv.Close()
	s := NewSender(nil, nil)
	const posts = 20
	failed := 0
	for i := range posts {
		if r := send(t, s, srv.URL); !r.Succeeded() {
			failed++
			t.Logf("post %d: %s", i, r.Reason())
		}
		// Around the receiver's idle timeout, on either side of it.
		time.Sleep(time.Second + time.Duration(i%7-3)*time.Millisecond)
	}
	if failed > 0 || got.Load() != posts {
		t.Errorf("%d of %d attempts failed; the receiver got %d POSTs", failed, posts, got.Load())
	}
}
