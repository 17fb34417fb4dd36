package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
)

// openapiYAML is the OpenAPI 3 document of this API. Integration tests validate every request
// and response they make against it, so it cannot drift from the handlers unnoticed.
//
//go:embed openapi.yaml
var openapiYAML []byte

// LoadOpenAPI parses and validates the OpenAPI document.
func LoadOpenAPI(ctx context.Context) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return doc, nil
}

type renderedDocs struct {
	json, html []byte
}

// docs converts the document to JSON and HTML once per process.
var docs = sync.OnceValues(func() (renderedDocs, error) {
	doc, err := LoadOpenAPI(context.Background())
	if err != nil {
		return renderedDocs{}, err
	}
	// kin-openapi writes the document as JSON itself (extensions included; keys sorted).
	j, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return renderedDocs{}, fmt.Errorf("openapi.yaml to JSON: %w", err)
	}
	return renderedDocs{json: append(j, '\n'), html: renderHTML(doc)}, nil
})

// docsRoutes serves the OpenAPI document and its rendered page.
func (s *Server) docsRoutes(r *gin.Engine) {
	d, err := docs()
	if err != nil {
		s.Log.Error("the OpenAPI document does not load; /openapi.json and /docs answer 500", "error", err)
	}
	serve := func(contentType string, body []byte) gin.HandlerFunc {
		return func(c *gin.Context) {
			if err != nil {
				problem(c, http.StatusInternalServerError, "the API description is unavailable")
				return
			}
			c.Data(http.StatusOK, contentType, body)
		}
	}
	r.GET("/openapi.json", serve("application/json; charset=utf-8", d.json))
	r.GET("/docs", serve("text/html; charset=utf-8", d.html))
}
