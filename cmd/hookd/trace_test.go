package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
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

// The README's sample of `hookd trace` is what printTree prints for that trace: the sample's spans
// (as Jaeger answers them, tags in its alphabetical order) rendered here must equal the README's
// block, so the layout the README shows cannot drift from the code's.
func TestREADMETraceSampleIsWhatTracePrints(t *testing.T) {
	type sp struct {
		id, parent, name string
		startUS, durUS   int64
		tags             string
	}
	post := func(status, attempt int) string {
		return fmt.Sprintf(`{"key":"http.response.status_code","value":%d},{"key":"server.address","value":"127.0.0.1"},{"key":"webhook.attempt","value":%d}`, status, attempt)
	}
	spans := []sp{
		{"a", "", "POST /v1/events", 0, 2950, `{"key":"http.response.status_code","value":201},{"key":"server.address","value":"hookd"}`},
		{"b", "a", "StartWorkflow:EventWorkflowV2", 3000, 18160, ""},
		{"c", "b", "RunWorkflow:EventWorkflowV2", 8000, 2069100, ""},
		{"d", "c", "StartActivity:FanOutPage", 22000, 70, ""},
		{"e", "d", "RunActivity:FanOutPage", 22100, 18910, ""},
		{"f", "e", "POST", 29000, 1250, post(500, 1)},
		{"g", "e", "StartWorkflow:DeliveryWorkflow", 33000, 8140, ""},
		{"h", "g", "RunWorkflow:DeliveryWorkflow", 36000, 2068660, ""},
		{"i", "h", "StartActivity:Attempt", 1027000, 110, ""},
		{"j", "i", "RunActivity:Attempt", 1036000, 12180, `{"key":"error","value":true}`},
		{"k", "j", "POST", 1046000, 460, post(500, 2)},
		{"l", "i", "RunActivity:Attempt", 2038000, 44490, `{"key":"error","value":true}`},
		{"m", "l", "POST", 2046000, 1630, post(500, 3)},
		{"n", "l", "smtp send", 2066000, 7780, ""},
	}
	var parts []string
	for _, s := range spans {
		refs := "[]"
		if s.parent != "" {
			refs = fmt.Sprintf(`[{"refType":"CHILD_OF","spanID":%q}]`, s.parent)
		}
		parts = append(parts, fmt.Sprintf(`{"spanID":%q,"operationName":%q,"references":%s,"startTime":%d,"duration":%d,"tags":[%s]}`,
			s.id, s.name, refs, 1_700_000_000_000_000+s.startUS, s.durUS, s.tags))
	}
	var tr jaegerTrace
	if err := json.Unmarshal([]byte(`{"data":[{"traceID":"8c606e4bd65bf65c25f69d42de302999","spans":[`+strings.Join(parts, ",")+`]}]}`), &tr); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printTree(&apiClient{out: &out}, tr.Data[0].Spans)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "trace 8c606e4bd65bf65c25f69d42de302999\n"+out.String()+"```") {
		t.Errorf("the README's trace sample is not what hookd trace prints; it prints:\n%s", out.String())
	}
}
