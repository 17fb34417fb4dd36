package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestOffWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tp, shutdown, err := FromEnv(context.Background(), "hookd")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Fatalf("tracer provider %T, want the no-op one", tp)
	}
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"},
	} {
		if Enabled(func(k string) string { return env[k] }) {
			t.Errorf("%v: enabled", env)
		}
	}
}

// With an endpoint, spans reach an OTLP/HTTP collector, under the service name.
func TestExportsToTheEndpoint(t *testing.T) {
	got := make(chan *coltrace.ExportTraceServiceRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltrace.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		got <- req
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "hookd-test")
	tp, shutdown, err := FromEnv(context.Background(), "hookd")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer(Name).Start(context.Background(), "publish")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	req := <-got
	rs := req.GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "publish" {
		t.Fatalf("exported %v", req)
	}
	var service string
	for _, kv := range rs[0].GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" {
			service = kv.GetValue().GetStringValue()
		}
	}
	if service != "hookd-test" {
		t.Errorf("service.name %q", service)
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	if TraceParent(context.Background()) != "" {
		t.Error("a context without a span has a traceparent")
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := ContextWithTraceParent(context.Background(), tp)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("span context %v", sc)
	}
	if got := TraceParent(ctx); got != tp {
		t.Errorf("traceparent %q, want %q", got, tp)
	}
	if sc := trace.SpanContextFromContext(ContextWithTraceParent(context.Background(), "garbage")); sc.IsValid() {
		t.Error("garbage makes a span context")
	}
}
