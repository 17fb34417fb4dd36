// Package webhook sends one signed callback over HTTP and classifies the answer.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/tracing"
)

const (
	// MaxBodyExcerpt is how much of a receiver's answer the ledger keeps, in bytes of UTF-8.
	MaxBodyExcerpt = 2048
	// MaxResponseHeaderBytes bounds a receiver's response header block. Go's default is 1 MiB;
	// a quarter of it is still 30 times what nginx or Node accept in a request's, and bounds what
	// each of the fan-out's concurrent attempts can make the worker hold. Above it the attempt
	// fails with a reason saying so.
	MaxResponseHeaderBytes = 256 << 10
	// drainLimit is how much more of a body is read (and dropped) so its connection can be reused.
	drainLimit = 64 << 10
)

// Request is one attempt to deliver a payload.
type Request struct {
	URL         string
	MessageID   string   // webhook-id: stable across attempts and replays
	Attempt     int      // webhook-attempt
	Secrets     []string // signing secrets; two during a rotation
	CallbackKey string   // sent as Authorization: Basic <key> when set
	Body        []byte
	Timeout     time.Duration
}

// Result is what happened. Headers records what was sent, minus credentials.
type Result struct {
	SentHeaders     map[string]string
	Status          int
	ResponseHeaders map[string]string
	ResponseBody    string
	Err             string // transport failure (timeout, DNS, refused), empty if the receiver answered
	Duration        time.Duration
	RetryAfter      time.Duration
	StartedAt       time.Time
}

// Succeeded reports a 2xx answer.
func (r Result) Succeeded() bool { return r.Err == "" && r.Status >= 200 && r.Status < 300 }

// Gone reports a 410: the receiver says the endpoint is gone for good.
func (r Result) Gone() bool { return r.Status == http.StatusGone }

// Reason is a one-line description of a failed attempt for the ledger and e-mails.
func (r Result) Reason() string {
	if r.Err != "" {
		return r.Err
	}
	s := fmt.Sprintf("HTTP %d", r.Status)
	if r.ResponseBody != "" {
		s += ": " + Clean(strings.Join(strings.Fields(r.ResponseBody), " "), 200)
	}
	return s
}

// Sender posts webhooks with one shared, connection-reusing client.
type Sender struct {
	client    *http.Client
	fresh     *http.Client // no keep-alive: the one resend after a reused connection was closed under it
	userAgent string
	now       func() time.Time
	tracer    trace.Tracer // nil: tracing off
}

// NewSender builds a sender. guard vets every address the client dials (nil allows all); tp, when
// it records, gets a span per attempt, and each POST carries it as a W3C traceparent header.
func NewSender(guard *Guard, tp trace.TracerProvider) *Sender {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if guard != nil {
		dialer.Control = guard.control
		// The guard resolves names itself so the answer it vets is the one dialled.
		dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			return guard.dial(ctx, dialer, network, address)
		}
	}
	tr := &http.Transport{
		Proxy:               nil, // a proxy would hide the real target from the SSRF guard
		DialContext:         dial,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		// Below the shortest keep-alive common servers use (Node's and Apache's 5 s): we drop an
		// idle connection before its server does, instead of POSTing into one it is closing.
		IdleConnTimeout:        idleConnTimeout,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
	}
	fresh := tr.Clone()
	fresh.DisableKeepAlives = true
	// Redirects are not followed: a receiver could bounce us to an internal address.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{
		client:    &http.Client{Transport: tr, CheckRedirect: noRedirect},
		fresh:     &http.Client{Transport: fresh, CheckRedirect: noRedirect},
		userAgent: "hookd/1",
		now:       time.Now,
		tracer:    tracerOf(tp),
	}
}

func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tracing.Off(tp) {
		return nil
	}
	return tp.Tracer(tracing.Name)
}

// Send makes one attempt. It returns an error only when the request cannot be built; every
// outcome of the network round trip is in the Result.
func (s *Sender) Send(ctx context.Context, req Request) (res Result, err error) {
	if s.tracer != nil {
		var span trace.Span
		ctx, span = s.startSpan(ctx, req)
		defer func() { endSpan(span, res, err) }()
	}
	started := s.now()
	sig, err := signature.Header(req.Secrets, req.MessageID, started, req.Body)
	if err != nil {
		return Result{}, fmt.Errorf("sign %s: %w", req.MessageID, err)
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return Result{}, fmt.Errorf("build request for %s: %w", req.MessageID, err)
	}
	sent := map[string]string{
		"Content-Type":            "application/json",
		"User-Agent":              s.userAgent,
		signature.HeaderID:        req.MessageID,
		signature.HeaderTimestamp: strconv.FormatInt(started.Unix(), 10),
		signature.HeaderSignature: sig,
		"webhook-attempt":         strconv.Itoa(req.Attempt),
	}
	if s.tracer != nil {
		// The receiver may join the trace; the header is not signed (Standard Webhooks signs the
		// id, timestamp and body only).
		if tp := tracing.TraceParent(ctx); tp != "" {
			sent["traceparent"] = tp
		}
	}
	for k, v := range sent {
		hr.Header.Set(k, v)
	}
	if req.CallbackKey != "" {
		hr.Header.Set("Authorization", "Basic "+req.CallbackKey)
		sent["Authorization"] = "Basic [redacted]"
	}
	res = Result{SentHeaders: sent, StartedAt: started}
	resp, err := s.do(ctx, hr)
	res.Duration = s.now().Sub(started)
	if err != nil {
		res.Err = describe(err, req.Timeout)
		return res, nil
	}
	defer resp.Body.Close()
	// A gzip body (Content-Encoding: gzip) arrives decompressed: the transport asked for it. A
	// read error (a corrupt gzip stream, a reset) keeps what was read: the status is the answer.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyExcerpt))
	drained, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit)) // so the connection can be reused
	res.Status = resp.StatusCode
	res.ResponseBody = excerpt(body, int64(len(body))+drained, drained == drainLimit, resp.Header.Get("Content-Type"))
	res.ResponseHeaders = map[string]string{}
	for _, k := range []string{"Content-Type", "Retry-After", "Location"} {
		if v := resp.Header.Get(k); v != "" {
			res.ResponseHeaders[k] = Clean(v, MaxHeaderValue)
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return res, nil
}

// idleConnTimeout is how long an idle connection to a receiver is kept for reuse.
const idleConnTimeout = 4 * time.Second

// do sends hr. A POST on a reused keep-alive connection that the receiver closed just as it was
// written fails with "connection reset by peer" or EOF before any answer; Go resends only
// idempotent requests then. When the connection was reused, not a byte of an answer came, and the
// error is the peer closing, the POST is sent once more on a new connection, as Chromium and
// Firefox resend any request, POSTs included, in exactly that case: the server closed an idle
// connection, it did not read a request. (A write that failed before any byte left is resent by
// Go itself.) The resend is the same attempt: same webhook-id, webhook-attempt and signature.
func (s *Sender) do(ctx context.Context, hr *http.Request) (*http.Response, error) {
	var reused, answered bool
	trace := &httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { reused = i.Reused },
		GotFirstResponseByte: func() { answered = true },
	}
	resp, err := s.client.Do(hr.WithContext(httptrace.WithClientTrace(ctx, trace)))
	if err == nil || !reused || answered || !peerClosed(err) || ctx.Err() != nil || hr.GetBody == nil {
		return resp, err
	}
	again := hr.Clone(ctx)
	if again.Body, err = hr.GetBody(); err != nil {
		return nil, err
	}
	return s.fresh.Do(again)
}

// peerClosed reports an error that says the peer closed or reset the connection.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "server closed idle connection")
}

// startSpan opens the span of one attempt. Only the host is recorded: a callback URL's path or
// query may hold a token.
func (s *Sender) startSpan(ctx context.Context, req Request) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", http.MethodPost),
		attribute.String("webhook.id", req.MessageID),
		attribute.Int("webhook.attempt", req.Attempt),
	}
	if u, err := url.Parse(req.URL); err == nil {
		attrs = append(attrs, attribute.String("server.address", u.Hostname()))
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err == nil {
				attrs = append(attrs, attribute.Int("server.port", n))
			}
		}
	}
	return s.tracer.Start(ctx, "POST", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

func endSpan(span trace.Span, res Result, err error) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case res.Err != "":
		span.SetAttributes(attribute.String("error.type", "transport"))
		span.SetStatus(codes.Error, res.Err)
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", res.Status))
		if !res.Succeeded() {
			span.SetAttributes(attribute.String("error.type", strconv.Itoa(res.Status)))
			span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(res.Status))
		}
	}
	span.End()
}

// describe turns a transport error into a short reason a receiver's operator understands, safe
// to store: some errors quote what the peer sent.
func describe(err error, timeout time.Duration) string {
	return Clean(describeRaw(err, timeout), MaxErrorText)
}

func describeRaw(err error, timeout time.Duration) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var blocked *BlockedError
	switch {
	case errors.As(err, &blocked):
		return blocked.Error()
	case strings.Contains(err.Error(), "server response headers exceeded"):
		return fmt.Sprintf("response headers larger than %d KiB: not accepted", MaxResponseHeaderBytes>>10)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Sprintf("timeout: no answer within %s", timeout)
	case errors.As(err, &dnsErr):
		return "dns: " + dnsErr.Error()
	case errors.As(err, &opErr):
		return "connection: " + opErr.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "request: " + ue.Err.Error()
	}
	return "request: " + err.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// retryAfter parses delta-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
