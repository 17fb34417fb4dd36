// Package apiclient is a typed Go client of hookd's REST API, generated from api/openapi.yaml by
// oapi-codegen (go generate ./apiclient; TestGeneratedClientIsCurrent keeps it in sync).
package apiclient

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../api/openapi.yaml

import (
	"context"
	"net/http"
)

// New returns a client of the API at server that authenticates with key (an app's API key or
// the operator key).
func New(server, key string, opts ...ClientOption) (*ClientWithResponses, error) {
	auth := WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+key)
		return nil
	})
	return NewClientWithResponses(server, append([]ClientOption{auth}, opts...)...)
}
