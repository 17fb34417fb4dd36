// Package schema compiles and applies the JSON Schemas (draft 2020-12 unless the schema's $schema
// names another draft) that publishers register for their events' data.
//
// A schema is hostile input: it is bounded in size and nesting depth, and it can never make hookd
// fetch anything. The only resources a compilation sees are the schema itself and the
// meta-schemas built into the validator; every other $ref (http, https, file, anything) is refused
// by a loader that loads nothing, so neither registration nor publish can be turned into a
// request to an internal address (SSRF) or a read of a local file.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Limits of a registered schema.
const (
	// MaxBytes is the largest schema document accepted.
	MaxBytes = 64 << 10
	// MaxDepth is the deepest nesting of objects and arrays in a schema document.
	MaxDepth = 32
	// MaxViolations is how many violations Validate reports at most.
	MaxViolations = 20
)

// location is the URL the schema is compiled under. It is not fetchable: it only names the one
// resource a compilation is allowed to see.
const location = "urn:hookd:event-schema"

// Schema is a compiled schema, safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

// ErrRemoteRef is the cause of a refused compilation that needed a resource other than the schema
// itself and the built-in meta-schemas.
var ErrRemoteRef = errors.New("$ref to a resource outside the schema is not allowed (nothing is fetched)")

// refuseAll is the compiler's loader: it loads nothing.
type refuseAll struct{}

func (refuseAll) Load(url string) (any, error) {
	return nil, fmt.Errorf("%w: %s", ErrRemoteRef, url)
}

// Compile checks a schema document against the limits and compiles it. The error says what is
// wrong in words fit for an API answer.
func Compile(raw []byte) (*Schema, error) {
	if len(raw) > MaxBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxBytes)
	}
	if d, err := depth(raw); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	} else if d > MaxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, errors.New("a schema is a JSON object (or true/false)")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseAll{})
	// Formats (date-time, email, uuid, ...) are checked: publishers who write them mean them.
	c.AssertFormat()
	if err := c.AddResource(location, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := c.Compile(location)
	if err != nil {
		return nil, compileError(err)
	}
	return &Schema{s: s}, nil
}

// compileError rewords the validator's errors without its internal resource name.
func compileError(err error) error {
	var load *jsonschema.LoadURLError
	if errors.As(err, &load) {
		return fmt.Errorf("%w: %s", ErrRemoteRef, load.URL)
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		// The schema is not valid against its meta-schema: name the first leaf.
		if v := violations(ve, 1); len(v) > 0 {
			return fmt.Errorf("not a valid JSON Schema: at %s: %s", schemaPath(v[0].Pointer), v[0].Message)
		}
	}
	return errors.New(strings.ReplaceAll(err.Error(), location, "schema"))
}

func schemaPath(p string) string {
	if p == "" {
		return "the root"
	}
	return p
}

// Violation is one way in which data does not fit a schema.
type Violation struct {
	// Pointer is the RFC 6901 JSON pointer into the data ("" is the data itself).
	Pointer string `json:"pointer"`
	// Keyword is the schema keyword that failed (type, required, minimum, ...).
	Keyword string `json:"keyword"`
	Message string `json:"message"`
}

// Validate checks data (a JSON document) against the schema. It returns nil when the data is
// valid, else at most MaxViolations violations, most specific first in document order.
func (s *Schema) Validate(data []byte) ([]Violation, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("data is not valid JSON: %w", err)
	}
	return s.ValidateValue(v), nil
}

// ValidateValue is Validate for a value decoded with jsonschema.UnmarshalJSON (numbers as
// json.Number) or encoding/json.
func (s *Schema) ValidateValue(v any) []Violation {
	err := s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Violation{{Message: err.Error()}}
	}
	return violations(ve, MaxViolations)
}

var printer = message.NewPrinter(language.English)

// violations flattens a validation error's tree into its leaves (the causes that say what is
// wrong, not the "allOf failed" around them), at most limit of them.
func violations(ve *jsonschema.ValidationError, limit int) []Violation {
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(out) >= limit {
			return
		}
		if len(e.Causes) == 0 {
			out = append(out, Violation{Pointer: pointer(e.InstanceLocation), Keyword: keyword(e.ErrorKind),
				Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

// keyword is the failing keyword: the last element of the kind's keyword path that is a keyword
// (a path such as properties/name/type ends in one).
func keyword(k jsonschema.ErrorKind) string {
	if _, ok := k.(*kind.FalseSchema); ok {
		return "false"
	}
	p := k.KeywordPath()
	if len(p) == 0 {
		return ""
	}
	return p[len(p)-1]
}

// pointer is an RFC 6901 JSON pointer.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// depth is the deepest nesting of objects and arrays in a JSON document, read as tokens so that a
// deep document costs no recursion.
func depth(raw []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	d, deepest := 0, 0
	for {
		t, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest, nil
		}
		if err != nil {
			return 0, err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			d++
			deepest = max(deepest, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}
