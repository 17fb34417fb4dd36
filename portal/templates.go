package portal

import (
	"encoding/json"
	"fmt"
	"html/template"
	"strings"
	"time"
	"unicode/utf8"
)

// pageNames are the templates rendered inside the layout.
var pageNames = []string{"error", "endpoints", "endpoint", "event-types", "deliveries", "delivery", "recover", "operation",
	"operational", "audit"}

var funcs = template.FuncMap{
	"join": func(xs []string) string { return strings.Join(xs, ", ") },
	"first": func(xs []string) string {
		if len(xs) == 0 || xs[0] == "*" {
			return ""
		}
		return xs[0]
	},
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"truncate": func(s string, n int) string {
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		return string([]rune(s)[:n]) + "…"
	},
	"pretty": func(b []byte) string { return pretty(json.RawMessage(b)) },
	"examples": func(b []byte) []string {
		var exs []json.RawMessage
		_ = json.Unmarshal(b, &exs)
		out := make([]string, len(exs))
		for i, e := range exs {
			out[i] = pretty(e)
		}
		return out
	},
}

// parsePages parses each page with the layout, and the htmx fragments.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("portal templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("portal template %s: %w", name, err)
		}
		out[name] = t
	}
	frag, err := template.New("fragments.html").Funcs(funcs).ParseFS(templateFS, "templates/fragments.html")
	if err != nil {
		return nil, fmt.Errorf("portal fragments: %w", err)
	}
	out["fragments"] = frag
	return out, nil
}
