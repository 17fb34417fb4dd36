package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/metrics"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(openapiYAML)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	// Every operation has an id and a summary, and every /v1 operation answers 401 without a key.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s %s: operationId and summary are required", method, path)
			}
			if strings.HasPrefix(path, "/v1/") && op.Responses.Status(http.StatusUnauthorized) == nil {
				t.Errorf("%s %s: no 401 response", method, path)
			}
		}
	}
}

// testServer is a Server whose handler only registers routes: no dependency is reachable.
func testServer() *Server {
	return &Server{Log: slog.New(slog.DiscardHandler), Metrics: metrics.New()}
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// The document and the router list the same operations.
func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	doc, err := LoadOpenAPI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	engine, ok := testServer().Handler().(*gin.Engine)
	if !ok {
		t.Fatal("Handler() is not a *gin.Engine")
	}
	routed := map[string]bool{}
	for _, r := range engine.Routes() {
		path := ginParam.ReplaceAllString(r.Path, "{$1}")
		routed[r.Method+" "+path] = true
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in api/openapi.yaml (as %s %s)", r.Method, r.Path, r.Method, path)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !routed[method+" "+path] {
				t.Errorf("api/openapi.yaml documents %s %s, which no route serves", method, path)
			}
		}
	}
}

func TestServesTheDocument(t *testing.T) {
	h := testServer().Handler()
	get := func(path string) *http.Response {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Result()
	}

	res := get("/openapi.json")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("/openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !json.Valid(body) {
		t.Fatal("/openapi.json is not JSON")
	}
	served, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := served.Validate(context.Background()); err != nil {
		t.Fatalf("served document: %v", err)
	}
	orig, _ := LoadOpenAPI(context.Background())
	a, _ := json.Marshal(orig)
	b, _ := json.Marshal(served)
	if string(a) != string(b) {
		t.Error("/openapi.json differs from api/openapi.yaml")
	}

	res = get("/docs")
	page, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	html := string(page)
	for path, item := range orig.Paths.Map() {
		for method, op := range item.Operations() {
			if !strings.Contains(html, `id="op-`+op.OperationID+`"`) || !strings.Contains(html, "<code>"+path+"</code>") {
				t.Errorf("/docs lacks %s %s", method, path)
			}
		}
	}
	for name := range orig.Components.Schemas {
		if !strings.Contains(html, `id="schema-`+name+`"`) {
			t.Errorf("/docs lacks schema %s", name)
		}
	}
	for _, want := range []string{"pending, succeeded, failed, cancelled", "application/problem+json", "Public: no authentication"} {
		if !strings.Contains(html, want) {
			t.Errorf("/docs lacks %q", want)
		}
	}
}
