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
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/tracing"
)

// MaxBodyExcerpt is how much of a receiver's answer the ledger keeps.
const MaxBodyExcerpt = 2048

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
		body := strings.Join(strings.Fields(r.ResponseBody), " ")
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		s += ": " + body
	}
	return s
}

// Sender posts webhooks with one shared, connection-reusing client.
type Sender struct {
	client    *http.Client
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
		Proxy:                 nil, // a proxy would hide the real target from the SSRF guard
		DialContext:           dial,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Sender{
		client: &http.Client{
			Transport: tr,
			// Redirects are not followed: a receiver could bounce us to an internal address.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
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
	resp, err := s.client.Do(hr)
	res.Duration = s.now().Sub(started)
	if err != nil {
		res.Err = describe(err, req.Timeout)
		return res, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyExcerpt))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain a little so the connection can be reused
	res.Status = resp.StatusCode
	res.ResponseBody = string(body)
	res.ResponseHeaders = map[string]string{}
	for _, k := range []string{"Content-Type", "Retry-After", "Location"} {
		if v := resp.Header.Get(k); v != "" {
			res.ResponseHeaders[k] = v
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return res, nil
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

// describe turns a transport error into a short reason a receiver's operator understands.
func describe(err error, timeout time.Duration) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var blocked *BlockedError
	switch {
	case errors.As(err, &blocked):
		return blocked.Error()
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
