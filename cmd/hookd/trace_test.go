package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// A Jaeger query API answer (the shape of GET /api/traces/{id}, trimmed) prints as a tree:
// children under their parent, siblings in start order, with the tags that say what happened.
func TestPrintTree(t *testing.T) {
	const answer = `{"data":[{"traceID":"4bf9","spans":[
	 {"spanID":"c","operationName":"POST","references":[{"refType":"CHILD_OF","spanID":"b"}],"startTime":1000300,"duration":1500,
	  "tags":[{"key":"webhook.attempt","value":1},{"key":"http.response.status_code","value":500},{"key":"span.kind","value":"client"}]},
	 {"spanID":"a","operationName":"POST /v1/events","references":[{"refType":"CHILD_OF","spanID":"publisher"}],"startTime":1000000,"duration":3000,"tags":[]},
	 {"spanID":"b","operationName":"RunWorkflow:EventWorkflowV2","references":[{"refType":"CHILD_OF","spanID":"a"}],"startTime":1000100,"duration":2000000,"tags":[]},
	 {"spanID":"d","operationName":"smtp send","references":[{"refType":"CHILD_OF","spanID":"b"}],"startTime":1900000,"duration":7000,"tags":[]}]}]}`
	var tr jaegerTrace
	if err := json.Unmarshal([]byte(answer), &tr); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printTree(&apiClient{out: &out}, tr.Data[0].Spans)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"POST /v1/events ", "  RunWorkflow:EventWorkflowV2 ", "    POST ", "    smtp send "}
	if len(lines) != len(want) {
		t.Fatalf("got\n%s", out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[2], "webhook.attempt=1") || !strings.Contains(lines[2], "http.response.status_code=500") ||
		strings.Contains(lines[2], "span.kind") {
		t.Errorf("attempt line %q", lines[2])
	}
	if !strings.Contains(lines[3], "+900ms") {
		t.Errorf("e-mail line %q: want its offset from the first span", lines[3])
	}
}
