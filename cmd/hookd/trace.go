package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// jaegerTrace is the part of Jaeger's query API answer (GET /api/traces/{id}) the tree needs.
type jaegerTrace struct {
	Data []struct {
		Spans []jaegerSpan `json:"spans"`
	} `json:"data"`
}

type jaegerSpan struct {
	SpanID     string `json:"spanID"`
	Operation  string `json:"operationName"`
	References []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64 `json:"startTime"` // µs since the epoch
	Duration  int64 `json:"duration"`  // µs
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// traceCmd prints an event's trace as a tree, read from Jaeger's query API (HOOKD_JAEGER_URL,
// default http://127.0.0.1:16686, where make dev runs it).
func traceCmd(ctx context.Context, c *apiClient, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: hookd trace EVENT_ID")
	}
	r, err := c.api.GetEventWithResponse(ctx, args[0], nil)
	if err := check("event "+args[0], err, r, http.StatusOK); err != nil {
		return err
	}
	traceID := val(r.JSON200.Data.TraceId)
	if traceID == "" {
		return fmt.Errorf("event %s has no trace: it was published while tracing was off (OTEL_EXPORTER_OTLP_ENDPOINT unset)", args[0])
	}
	base := os.Getenv("HOOKD_JAEGER_URL")
	if base == "" {
		base = "http://127.0.0.1:16686"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/traces/"+traceID, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("read trace %s from jaeger: %w", traceID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read trace %s from jaeger: %s", traceID, resp.Status)
	}
	var t jaegerTrace
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return fmt.Errorf("read trace %s from jaeger: %w", traceID, err)
	}
	if len(t.Data) == 0 {
		return fmt.Errorf("jaeger has no trace %s (yet: spans arrive in batches of a few seconds)", traceID)
	}
	fmt.Fprintf(c.out, "trace %s\n", traceID)
	printTree(c, t.Data[0].Spans)
	return nil
}

// printTree prints spans parent first, siblings in start order, each with its offset from the
// first span, its duration and the tags that say what happened.
func printTree(c *apiClient, spans []jaegerSpan) {
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	children := map[string][]jaegerSpan{}
	var t0 int64
	for i, s := range spans {
		parent := ""
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" && ids[r.SpanID] {
				parent = r.SpanID
			}
		}
		children[parent] = append(children[parent], s)
		if i == 0 || s.StartTime < t0 {
			t0 = s.StartTime
		}
	}
	for _, cs := range children {
		sort.Slice(cs, func(i, j int) bool { return cs[i].StartTime < cs[j].StartTime })
	}
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		for _, s := range children[parent] {
			fmt.Fprintf(c.out, "%-60s +%-9s %9s%s\n", indent+s.Operation, time.Duration((s.StartTime-t0)*1000).Round(time.Millisecond),
				time.Duration(s.Duration*1000).Round(10*time.Microsecond), spanTags(s))
			walk(s.SpanID, indent+"  ")
		}
	}
	walk("", "")
}

func spanTags(s jaegerSpan) string {
	var out []string
	for _, t := range s.Tags {
		switch t.Key {
		case "webhook.attempt", "http.response.status_code", "server.address", "error", "otel.status_description":
			out = append(out, fmt.Sprintf("%s=%v", t.Key, t.Value))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "  " + strings.Join(out, " ")
}
