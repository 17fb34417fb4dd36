package schema

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

const order = `{
	"type": "object",
	"required": ["id", "total"],
	"properties": {
		"id": {"type": "string", "minLength": 1},
		"total": {"type": "number", "minimum": 0},
		"email": {"type": "string", "format": "email"},
		"items": {"type": "array", "items": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}}
	},
	"additionalProperties": false
}`

func TestValidateNamesPointerAndKeyword(t *testing.T) {
	s, err := Compile([]byte(order))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Validate([]byte(`{"id":"o1","total":3.5,"items":[{"sku":"a"}]}`)); err != nil || v != nil {
		t.Fatalf("valid data: %v %v", v, err)
	}
	v, err := s.Validate([]byte(`{"id":"","total":-1,"email":"nope","items":[{"sku":"a"},{"sku":7}],"extra":1}`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, x := range v {
		got[x.Pointer] = x.Keyword
		if x.Message == "" {
			t.Errorf("violation without a message: %+v", x)
		}
	}
	want := map[string]string{"/id": "minLength", "/total": "minimum", "/email": "format", "/items/1/sku": "type", "": "additionalProperties"}
	for p, k := range want {
		if got[p] != k {
			t.Errorf("at %q: keyword %q, want %q (all: %+v)", p, got[p], k, v)
		}
	}
}

func TestValidateReportsAtMost20(t *testing.T) {
	var props, data []string
	for i := range 50 {
		props = append(props, fmt.Sprintf(`"f%d":{"type":"integer"}`, i))
		data = append(data, fmt.Sprintf(`"f%d":"x"`, i))
	}
	s, err := Compile([]byte(`{"type":"object","properties":{` + strings.Join(props, ",") + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Validate([]byte(`{` + strings.Join(data, ",") + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != MaxViolations {
		t.Fatalf("%d violations, want %d", len(v), MaxViolations)
	}
}

// TestRemoteRefsAreRefused: no $ref may make hookd fetch anything, whatever its scheme, whether
// named directly or through an $id that moves the base URI.
func TestRemoteRefsAreRefused(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"type":"string"}`))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(file, []byte(`{"type":"string"}`), 0o600)
	for _, s := range []string{
		`{"$ref": "` + srv.URL + `/s.json"}`,
		`{"properties": {"a": {"$ref": "` + srv.URL + `/s.json#/x"}}}`,
		`{"$id": "` + srv.URL + `/base/", "$ref": "other.json"}`,
		`{"$ref": "file://` + file + `"}`,
		`{"$dynamicRef": "` + srv.URL + `/s.json"}`,
		`{"$schema": "` + srv.URL + `/meta.json"}`,
	} {
		_, err := Compile([]byte(s))
		if !errors.Is(err, ErrRemoteRef) {
			t.Errorf("%s: err %v, want ErrRemoteRef", s, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the receiver was asked %d times", n)
	}
	// References inside the schema, and the built-in meta-schema, are fine.
	if _, err := Compile([]byte(`{"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": {"s": {"type": "string"}},
		"properties": {"a": {"$ref": "#/$defs/s"}}}`)); err != nil {
		t.Fatal(err)
	}
}

func TestCompileBounds(t *testing.T) {
	deep := strings.Repeat(`{"items":`, MaxDepth+1) + `{}` + strings.Repeat(`}`, MaxDepth+1)
	if _, err := Compile([]byte(deep)); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("deep schema: %v", err)
	}
	big := `{"description":"` + strings.Repeat("x", MaxBytes) + `"}`
	if _, err := Compile([]byte(big)); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("big schema: %v", err)
	}
	for _, s := range []string{`[]`, `"x"`, `{"type": 7}`, `{"minimum": "a"}`, `{`} {
		if _, err := Compile([]byte(s)); err == nil {
			t.Errorf("%s: compiled", s)
		} else if strings.Contains(err.Error(), location) {
			t.Errorf("%s: error names the internal location: %v", s, err)
		}
	}
}

// realistic is a 30-field object schema of the kind publishers register: strings with formats
// and patterns, numbers with bounds, enums, a nested address and an array of line items.
func realistic() (schemaDoc, data string) {
	var props, req, vals []string
	for i := range 10 {
		props = append(props, fmt.Sprintf(`"s%d":{"type":"string","minLength":1,"maxLength":200}`, i))
		vals = append(vals, fmt.Sprintf(`"s%d":"value number %d"`, i, i))
		req = append(req, fmt.Sprintf(`"s%d"`, i))
	}
	for i := range 8 {
		props = append(props, fmt.Sprintf(`"n%d":{"type":"number","minimum":0,"maximum":1000000}`, i))
		vals = append(vals, fmt.Sprintf(`"n%d":%d.5`, i, i*100))
	}
	props = append(props,
		`"id":{"type":"string","format":"uuid"}`, `"createdAt":{"type":"string","format":"date-time"}`,
		`"email":{"type":"string","format":"email"}`, `"status":{"enum":["new","paid","shipped","cancelled"]}`,
		`"currency":{"type":"string","pattern":"^[A-Z]{3}$"}`, `"paid":{"type":"boolean"}`,
		`"tags":{"type":"array","items":{"type":"string"},"maxItems":20,"uniqueItems":true}`,
		`"address":{"type":"object","required":["city"],"properties":{"street":{"type":"string"},"city":{"type":"string"},"zip":{"type":"string"}}}`,
		`"lines":{"type":"array","items":{"type":"object","required":["sku","qty"],"properties":{"sku":{"type":"string"},"qty":{"type":"integer","minimum":1},"price":{"type":"number"}}}}`,
		`"note":{"type":["string","null"]}`, `"count":{"type":"integer"}`, `"ref":{"type":"string"}`)
	vals = append(vals, `"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"`, `"createdAt":"2025-01-02T03:04:05Z"`,
		`"email":"ann@example.com"`, `"status":"paid"`, `"currency":"EUR"`, `"paid":true`, `"tags":["a","b","c"]`,
		`"address":{"street":"1 Main St","city":"Springfield","zip":"12345"}`,
		`"lines":[{"sku":"A-1","qty":2,"price":9.5},{"sku":"B-2","qty":1,"price":20}]`,
		`"note":null`, `"count":3`, `"ref":"r-1"`)
	req = append(req, `"id"`, `"status"`)
	return `{"type":"object","required":[` + strings.Join(req, ",") + `],"properties":{` + strings.Join(props, ",") +
			`},"additionalProperties":false}`,
		`{` + strings.Join(vals, ",") + `}`
}

func TestRealisticSchema(t *testing.T) {
	doc, data := realistic()
	if n := strings.Count(doc, `":{"type"`) + strings.Count(doc, `":{"enum"`); n < 30 {
		t.Fatalf("%d fields", n)
	}
	s, err := Compile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Validate([]byte(data)); err != nil || v != nil {
		t.Fatalf("%v %v", v, err)
	}
}

// BenchmarkValidate30Fields is the cost of validating one event's data (parsing included) against
// a realistic 30-field schema: what a publish pays for a registered schema.
func BenchmarkValidate30Fields(b *testing.B) {
	doc, data := realistic()
	s, err := Compile([]byte(doc))
	if err != nil {
		b.Fatal(err)
	}
	raw := []byte(data)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if v, err := s.Validate(raw); err != nil || v != nil {
			b.Fatal(v, err)
		}
	}
}

func BenchmarkCompile30Fields(b *testing.B) {
	doc, _ := realistic()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile([]byte(doc)); err != nil {
			b.Fatal(err)
		}
	}
}
