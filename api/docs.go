package api

import (
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// renderHTML lists every operation with its parameters, request body and responses, and every
// component schema, as plain HTML: readable without JavaScript or anything from the internet.
func renderHTML(doc *openapi3.T) []byte {
	var b strings.Builder
	e := html.EscapeString
	title := "API"
	version := ""
	description := ""
	if doc.Info != nil {
		title, version, description = doc.Info.Title, doc.Info.Version, doc.Info.Description
	}
	fmt.Fprintf(&b, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f}
code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{background:#f5f5f7;padding:.6rem .8rem;overflow-x:auto;border-radius:4px}
.desc{white-space:pre-wrap}
.op{border-top:1px solid #ddd;margin-top:1.6rem;padding-top:.4rem}
.m{display:inline-block;min-width:4.2rem;text-align:center;border-radius:3px;color:#fff;font-size:13px;padding:1px 4px;margin-right:.4rem}
.GET{background:#2b7bb9}.POST{background:#2f9e44}.PUT{background:#d9822b}.PATCH{background:#8e5bd0}.DELETE{background:#c92a2a}
table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
.muted{color:#666}a{color:#0b62a4}
</style></head><body>
<h1>%s <small class="muted">version %s</small></h1>
<p>Machine-readable document: <a href="/openapi.json">/openapi.json</a> (OpenAPI %s).</p>
<div class="desc">%s</div>
`, e(title), e(title), e(version), e(doc.OpenAPI), e(description))

	ops := operations(doc)
	b.WriteString("<h2>Operations</h2>\n<ul>\n")
	for _, o := range ops {
		fmt.Fprintf(&b, `<li><a href="#%s"><span class="m %s">%s</span><code>%s</code></a> %s</li>`+"\n",
			e(o.anchor()), o.method, o.method, e(o.path), e(o.op.Summary))
	}
	b.WriteString("</ul>\n")

	for _, o := range ops {
		writeOperation(&b, doc, o)
	}

	if doc.Components != nil && len(doc.Components.Schemas) > 0 {
		b.WriteString(`<h2 class="op">Schemas</h2>` + "\n")
		names := sortedKeys(doc.Components.Schemas)
		for _, name := range names {
			ref := doc.Components.Schemas[name]
			fmt.Fprintf(&b, `<h3 id="schema-%s">%s</h3>`+"\n", e(name), e(name))
			if ref.Value != nil && ref.Value.Description != "" {
				fmt.Fprintf(&b, "<div class=\"desc\">%s</div>\n", e(strings.TrimSpace(ref.Value.Description)))
			}
			b.WriteString("<pre>")
			writeSchema(&b, &openapi3.SchemaRef{Value: ref.Value}, 0)
			b.WriteString("</pre>\n")
		}
	}
	b.WriteString("</body></html>\n")
	return []byte(b.String())
}

type operation struct {
	path, method string
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

func (o operation) anchor() string {
	if o.op.OperationID != "" {
		return "op-" + o.op.OperationID
	}
	return "op-" + o.method + "-" + o.path
}

// operations lists the operations grouped by their first tag, in the order of the document's tags.
func operations(doc *openapi3.T) []operation {
	var all []operation
	for _, path := range sortedKeys(doc.Paths.Map()) {
		item := doc.Paths.Value(path)
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"} {
			if op := item.GetOperation(method); op != nil {
				all = append(all, operation{path: path, method: method, item: item, op: op})
			}
		}
	}
	rank := func(o operation) int {
		if len(o.op.Tags) > 0 {
			for i, t := range doc.Tags {
				if t.Name == o.op.Tags[0] {
					return i
				}
			}
		}
		return len(doc.Tags)
	}
	slices.SortStableFunc(all, func(a, b operation) int { return rank(a) - rank(b) })
	return all
}

func writeOperation(b *strings.Builder, doc *openapi3.T, o operation) {
	e := html.EscapeString
	fmt.Fprintf(b, `<div class="op" id="%s"><h3><span class="m %s">%s</span><code>%s</code> %s</h3>`+"\n",
		e(o.anchor()), o.method, o.method, e(o.path), e(o.op.Summary))
	security := doc.Security
	if o.op.Security != nil {
		security = *o.op.Security
	}
	if len(security) == 0 {
		b.WriteString(`<p class="muted">Public: no authentication.</p>` + "\n")
	} else {
		var schemes []string
		for _, req := range security {
			schemes = append(schemes, strings.Join(sortedKeys(req), " + "))
		}
		fmt.Fprintf(b, "<p class=\"muted\">Authentication: %s (<code>Authorization: Bearer &lt;key&gt;</code>).</p>\n", e(strings.Join(schemes, " or ")))
	}
	if d := strings.TrimSpace(o.op.Description); d != "" {
		fmt.Fprintf(b, "<div class=\"desc\">%s</div>\n", e(d))
	}

	params := append(openapi3.Parameters{}, o.item.Parameters...)
	params = append(params, o.op.Parameters...)
	if len(params) > 0 {
		b.WriteString("<h4>Parameters</h4>\n<table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>\n")
		for _, pr := range params {
			p := pr.Value
			if p == nil {
				continue
			}
			req := ""
			if p.Required {
				req = " <b>(required)</b>"
			}
			var typ strings.Builder
			if p.Schema != nil {
				writeSchema(&typ, p.Schema, 0)
			}
			fmt.Fprintf(b, "<tr><td><code>%s</code>%s</td><td>%s</td><td><code>%s</code></td><td>%s</td></tr>\n",
				e(p.Name), req, e(p.In), typ.String(), e(p.Description))
		}
		b.WriteString("</table>\n")
	}

	if rb := o.op.RequestBody; rb != nil && rb.Value != nil {
		req := "optional"
		if rb.Value.Required {
			req = "required"
		}
		fmt.Fprintf(b, "<h4>Request body <span class=\"muted\">(%s)</span></h4>\n", req)
		if d := strings.TrimSpace(rb.Value.Description); d != "" {
			fmt.Fprintf(b, "<div class=\"desc\">%s</div>\n", e(d))
		}
		writeContent(b, rb.Value.Content)
	}

	if o.op.Responses != nil {
		b.WriteString("<h4>Responses</h4>\n")
		codes := sortedKeys(o.op.Responses.Map())
		for _, code := range codes {
			rr := o.op.Responses.Value(code)
			if rr == nil || rr.Value == nil {
				continue
			}
			r := rr.Value
			desc := ""
			if r.Description != nil {
				desc = strings.TrimSpace(*r.Description)
			}
			fmt.Fprintf(b, "<p><b>%s</b> %s</p>\n", e(code), e(desc))
			if len(r.Headers) > 0 {
				b.WriteString("<table><tr><th>header</th><th>type</th><th>description</th></tr>\n")
				for _, name := range sortedKeys(r.Headers) {
					h := r.Headers[name].Value
					if h == nil {
						continue
					}
					var typ strings.Builder
					if h.Schema != nil {
						writeSchema(&typ, h.Schema, 0)
					}
					fmt.Fprintf(b, "<tr><td><code>%s</code></td><td><code>%s</code></td><td>%s</td></tr>\n", e(name), typ.String(), e(h.Description))
				}
				b.WriteString("</table>\n")
			}
			writeContent(b, r.Content)
		}
	}
	b.WriteString("</div>\n")
}

func writeContent(b *strings.Builder, content openapi3.Content) {
	for _, mt := range sortedKeys(content) {
		fmt.Fprintf(b, "<div><code>%s</code></div>\n", html.EscapeString(mt))
		if s := content[mt].Schema; s != nil {
			b.WriteString("<pre>")
			if s.Ref != "" && s.Value != nil {
				// A body that is one named schema: name it and show it.
				writeSchema(b, s, 0)
				b.WriteString(" = ")
				s = &openapi3.SchemaRef{Value: s.Value}
			}
			writeSchema(b, s, 0)
			b.WriteString("</pre>\n")
		}
	}
}

// writeSchema writes a compact, indented rendering of a schema; references to component schemas
// become links to their definitions.
func writeSchema(b *strings.Builder, ref *openapi3.SchemaRef, indent int) {
	e := html.EscapeString
	if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
		fmt.Fprintf(b, `<a href="#schema-%s">%s</a>`, e(name), e(name))
		return
	}
	s := ref.Value
	if s == nil {
		b.WriteString("?")
		return
	}
	pad := strings.Repeat("  ", indent)
	switch {
	case len(s.AllOf) > 0:
		b.WriteString("all of:")
		writeAlternatives(b, s.AllOf, indent)
	case len(s.OneOf) > 0:
		b.WriteString("one of:")
		writeAlternatives(b, s.OneOf, indent)
	case len(s.AnyOf) > 0:
		b.WriteString("any of:")
		writeAlternatives(b, s.AnyOf, indent)
	case s.Type.Is("object") || (s.Type == nil && len(s.Properties) > 0):
		b.WriteString("object {")
		names := sortedKeys(s.Properties)
		// Required properties first, each group in name order.
		slices.SortStableFunc(names, func(x, y string) int {
			return boolRank(slices.Contains(s.Required, x)) - boolRank(slices.Contains(s.Required, y))
		})
		for _, name := range names {
			p := s.Properties[name]
			mark := ""
			if slices.Contains(s.Required, name) {
				mark = "*"
			}
			fmt.Fprintf(b, "\n%s  %s%s: ", pad, e(name), mark)
			writeSchema(b, p, indent+1)
			if p.Ref == "" && p.Value != nil && p.Value.Description != "" && !isComposite(p.Value) {
				fmt.Fprintf(b, `  <span class="muted">// %s</span>`, e(oneLine(p.Value.Description)))
			}
		}
		if ap := s.AdditionalProperties; ap.Schema != nil {
			fmt.Fprintf(b, "\n%s  &lt;any name&gt;: ", pad)
			writeSchema(b, ap.Schema, indent+1)
		} else if ap.Has != nil && !*ap.Has {
			fmt.Fprintf(b, "\n%s  <span class=\"muted\">(no other fields)</span>", pad)
		}
		fmt.Fprintf(b, "\n%s}", pad)
	case s.Type.Is("array"):
		b.WriteString("array of ")
		if s.Items != nil {
			writeSchema(b, s.Items, indent)
		} else {
			b.WriteString("any")
		}
	case s.Type == nil:
		b.WriteString("any JSON value")
	default:
		b.WriteString(e(strings.Join(s.Type.Slice(), " | ")))
	}
	if c := constraints(s); c != "" {
		fmt.Fprintf(b, ` <span class="muted">(%s)</span>`, e(c))
	}
}

func writeAlternatives(b *strings.Builder, alts openapi3.SchemaRefs, indent int) {
	pad := strings.Repeat("  ", indent)
	for _, a := range alts {
		fmt.Fprintf(b, "\n%s  - ", pad)
		writeSchema(b, a, indent+2)
	}
}

func isComposite(s *openapi3.Schema) bool {
	return s.Type.Is("object") || len(s.AllOf)+len(s.OneOf)+len(s.AnyOf) > 0
}

// constraints summarises a schema's format, enum, bounds, pattern, default and nullability.
func constraints(s *openapi3.Schema) string {
	var c []string
	if s.Format != "" {
		c = append(c, s.Format)
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, v := range s.Enum {
			vals = append(vals, fmt.Sprint(v))
		}
		c = append(c, "one of: "+strings.Join(vals, ", "))
	}
	num := func(f *float64) string { return strconv.FormatFloat(*f, 'f', -1, 64) }
	switch {
	case s.Min != nil && s.Max != nil:
		c = append(c, num(s.Min)+" to "+num(s.Max))
	case s.Min != nil:
		c = append(c, "at least "+num(s.Min))
	case s.Max != nil:
		c = append(c, "at most "+num(s.Max))
	}
	if s.MinLength > 0 {
		c = append(c, fmt.Sprintf("at least %d characters", s.MinLength))
	}
	if s.MaxLength != nil {
		c = append(c, fmt.Sprintf("at most %d characters", *s.MaxLength))
	}
	if s.MinItems > 0 {
		c = append(c, fmt.Sprintf("at least %d items", s.MinItems))
	}
	if s.MaxItems != nil {
		c = append(c, fmt.Sprintf("at most %d items", *s.MaxItems))
	}
	if s.Pattern != "" {
		c = append(c, "pattern "+s.Pattern)
	}
	if s.Default != nil {
		c = append(c, fmt.Sprintf("default %v", s.Default))
	}
	if s.Nullable {
		c = append(c, "nullable")
	}
	return strings.Join(c, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
