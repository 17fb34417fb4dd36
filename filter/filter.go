// Package filter validates and evaluates JSON Logic subscription filters (https://jsonlogic.com).
//
// A filter sees this document:
//
//	{"event": <the event's data>, "$eventType": "<type>", "$topic": "<topic>"}
//
// so {"var":"event.state"} reads the payload and {"var":"$eventType"} the type. The bare strings
// "$eventType" and "$topic" stand for those variables too, which is how the OS1 seed writes them:
// {"===":["$eventType","usercreatedevent"]}.
package filter

import (
	"bytes"
	"encoding/json"
	"fmt"

	jsonlogic "github.com/diegoholiveira/jsonlogic/v3"
)

// Variables names the bare strings that are read as variables.
var variables = map[string]bool{"$eventType": true, "$topic": true}

// Filter is a validated JSON Logic rule. The zero value matches everything.
type Filter struct {
	rule any
}

// Error says where in a rule validation failed, as a JSON-pointer-like path.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Path, e.Reason) }

// Compile validates raw JSON Logic. Empty input or JSON null yields the match-all filter.
func Compile(raw json.RawMessage) (Filter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return Filter{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var rule any
	if err := dec.Decode(&rule); err != nil {
		return Filter{}, &Error{Path: "$", Reason: "not valid JSON: " + err.Error()}
	}
	rule = normalise(rule)
	if _, ok := rule.(map[string]any); !ok {
		if _, isBool := rule.(bool); !isBool {
			return Filter{}, &Error{Path: "$", Reason: "a rule must be an object such as {\"==\":[...]} or a boolean"}
		}
	}
	if err := check(rule, "$"); err != nil {
		return Filter{}, err
	}
	return Filter{rule: rewrite(rule)}, nil
}

// Match evaluates the filter for one event. A rule that fails at run time returns the error and
// callers treat it as "no match".
func (f Filter) Match(eventType, topic string, data json.RawMessage) (ok bool, err error) {
	if f.rule == nil {
		return true, nil
	}
	var payload any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &payload); err != nil {
			return false, fmt.Errorf("filter: event data: %w", err)
		}
	}
	doc := map[string]any{"event": payload, "$eventType": eventType, "$topic": topic}
	defer func() {
		// The library type-asserts freely; a hostile rule must not take the worker down.
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("filter: rule panicked: %v", r)
		}
	}()
	out, err := jsonlogic.ApplyInterface(f.rule, doc)
	if err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	return truthy(out), nil
}

// normalise turns json.Number into float64, which is what the evaluator expects.
func normalise(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = normalise(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalise(x)
		}
	}
	return v
}

func check(v any, path string) error {
	switch t := v.(type) {
	case map[string]any:
		if len(t) != 1 {
			return &Error{Path: path, Reason: fmt.Sprintf("an operation has exactly one operator, found %d keys", len(t))}
		}
		for op, arg := range t {
			// Ask the library itself whether it knows the operator, so the two never disagree.
			if op != "var" && !jsonlogic.ValidateJsonLogic(map[string]any{op: []any{}}) {
				return &Error{Path: path, Reason: fmt.Sprintf("unknown operator %q", op)}
			}
			return check(arg, path+"."+op)
		}
	case []any:
		for i, x := range t {
			if err := check(x, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func rewrite(v any) any {
	switch t := v.(type) {
	case string:
		if variables[t] {
			return map[string]any{"var": t}
		}
	case map[string]any:
		if _, isVar := t["var"]; isVar {
			return t
		}
		for k, x := range t {
			t[k] = rewrite(x)
		}
	case []any:
		for i, x := range t {
			t[i] = rewrite(x)
		}
	}
	return v
}

// truthy follows the JSON Logic definition of truth.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case float64:
		return t != 0
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	}
	return true
}
