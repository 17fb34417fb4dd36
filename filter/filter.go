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
	"errors"
	"fmt"

	jsonlogic "github.com/diegoholiveira/jsonlogic/v3"
)

// Registration limits. They refuse, with the limit and the place named, a rule that is large,
// deep or plainly expensive; the evaluation budget (Budget) is what bounds the cost of every rule
// that passes them, on any event data. Rules stored before these limits are still evaluated
// (Parse), within the same budget.
const (
	// MaxSize bounds the rule's JSON text. Generous for hand-written rules (the seed's are under
	// 200 bytes; an "in" list of 100 ids is about 4 KiB) and small against the event's 256 KiB.
	MaxSize = 8 << 10
	// MaxDepth bounds the nesting of objects and arrays in a rule.
	MaxDepth = 32
	// MaxArrayLen bounds every array written in a rule: operator arguments and literal lists.
	MaxArrayLen = 256
	// MaxIteratorNesting bounds how many iterating operators (map, filter, reduce, all, none,
	// some) may enclose one another: their costs multiply.
	MaxIteratorNesting = 2
	// NominalDataArray is the length assumed for an array that comes from event data when
	// estimating a rule's cost at registration. Real data may be longer; the budget stops those.
	NominalDataArray = 64
	// Budget is the steps one evaluation may spend: an operation, an element walked, copied or
	// built, or 32 bytes of a string scanned or built each cost a step (a new map a few). The most
	// expensive rules registration accepts spend it in at most about 6 ms of CPU (BenchmarkHostile),
	// while ordinary rules take under 50 steps. A rule out of budget counts as "no match".
	Budget = 100_000
)

// ErrBudget is the error of an evaluation that spent its whole budget.
var ErrBudget = errors.New("filter: evaluation budget exhausted")

// Variables names the bare strings that are read as variables.
var variables = map[string]bool{"$eventType": true, "$topic": true}

// iterating names the operators that evaluate a rule once per element of an array.
var iterating = map[string]bool{"map": true, "filter": true, "reduce": true, "all": true, "none": true, "some": true}

// Filter is a validated JSON Logic rule. The zero value matches everything.
type Filter struct {
	rule   any
	budget int
}

// Error says where in a rule validation failed, as a JSON-pointer-like path, and which limit
// (if any) it broke.
type Error struct {
	Path   string
	Reason string
	// Limit names the registration limit broken ("size", "depth", "arrayLength",
	// "iteratorNesting", "cost"), or is empty for a rule that is not valid JSON Logic.
	Limit string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Path, e.Reason) }

// Compile validates raw JSON Logic as given at registration: valid, and within the limits.
// Empty input or JSON null yields the match-all filter.
func Compile(raw json.RawMessage) (Filter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > MaxSize {
		return Filter{}, &Error{Path: "$", Limit: "size", Reason: fmt.Sprintf("a rule has at most %d bytes of JSON, this one %d", MaxSize, len(raw))}
	}
	return compile(raw, true)
}

// Parse reads a stored rule: it must be valid JSON Logic, but the registration limits are not
// applied, so a rule accepted before they existed keeps working (within the budget).
func Parse(raw json.RawMessage) (Filter, error) {
	return compile(bytes.TrimSpace(raw), false)
}

func compile(raw json.RawMessage, limits bool) (Filter, error) {
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
	if limits {
		if err := checkLimits(rule, "$", 1, 0); err != nil {
			return Filter{}, err
		}
		if _, err := estimate(rule, "$"); err != nil {
			return Filter{}, err
		}
	}
	return Filter{rule: rewrite(rule), budget: Budget}, nil
}

// WithBudget returns the filter with another evaluation budget (tests and benchmarks).
func (f Filter) WithBudget(steps int) Filter {
	f.budget = steps
	return f
}

// Event is what a filter sees of one event. Its data is parsed once, on the first Match that
// needs it, and shared by every filter evaluated on it: evaluation never modifies it. Not safe
// for concurrent use.
type Event struct {
	Type, Topic string
	Data        json.RawMessage
	doc         map[string]any
	err         error
}

func (e *Event) document() (map[string]any, error) {
	if e.doc == nil && e.err == nil {
		var payload any
		if len(bytes.TrimSpace(e.Data)) > 0 {
			if err := json.Unmarshal(e.Data, &payload); err != nil {
				e.err = fmt.Errorf("filter: event data: %w", err)
				return nil, e.err
			}
		}
		e.doc = map[string]any{"event": payload, "$eventType": e.Type, "$topic": e.Topic}
	}
	return e.doc, e.err
}

// Match evaluates the filter for one event. A rule that fails at run time or spends its budget
// (ErrBudget) returns the error, and callers treat it as "no match".
func (f Filter) Match(eventType, topic string, data json.RawMessage) (ok bool, err error) {
	return f.MatchEvent(&Event{Type: eventType, Topic: topic, Data: data})
}

// MatchEvent is Match on an Event, whose data is parsed once for all the filters it meets.
func (f Filter) MatchEvent(ev *Event) (ok bool, err error) {
	ok, _, err = f.MatchWithin(ev, f.budget)
	return ok, err
}

// MatchWithin is MatchEvent with a budget of its own (at most the filter's), also reporting the
// steps spent.
func (f Filter) MatchWithin(ev *Event, budget int) (ok bool, spent int, err error) {
	if f.rule == nil {
		return true, 0, nil
	}
	doc, err := ev.document()
	if err != nil {
		return false, 0, err
	}
	out, spent, err := f.eval(doc, min(budget, f.budget))
	if err != nil {
		return false, spent, err
	}
	return truthy(out), spent, nil
}

// eval runs the rule within the filter's budget, turning the run-time failures of a rule that
// does not fit its data (which the library raises as panics too) into errors.
func (f Filter) eval(doc any, budget int) (out any, spent int, err error) {
	m := &machine{budget: budget}
	defer func() {
		spent = min(m.steps, m.budget)
		if r := recover(); r != nil {
			if _, ok := r.(budgetExceeded); ok {
				out, err = nil, fmt.Errorf("%w (%d steps)", ErrBudget, m.budget)
				return
			}
			out, err = nil, fmt.Errorf("filter: rule failed: %v", r)
		}
	}()
	return m.run(f.rule, doc), 0, nil
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

// checkLimits applies the size limits of registration. level counts the iterating operators
// whose per-element argument v is in.
func checkLimits(v any, path string, depth, level int) error {
	if depth > MaxDepth {
		return &Error{Path: path, Limit: "depth", Reason: fmt.Sprintf("a rule nests objects and arrays at most %d deep", MaxDepth)}
	}
	switch t := v.(type) {
	case map[string]any:
		for op, arg := range t {
			args, isList := arg.([]any)
			if !iterating[op] || !isList {
				return checkLimits(arg, path+"."+op, depth+1, level)
			}
			if level+1 > MaxIteratorNesting {
				return &Error{Path: path + "." + op, Limit: "iteratorNesting",
					Reason: fmt.Sprintf("at most %d iterating operators (map, filter, reduce, all, none, some) inside one another", MaxIteratorNesting)}
			}
			if len(args) > MaxArrayLen {
				return &Error{Path: path + "." + op, Limit: "arrayLength", Reason: fmt.Sprintf("an array in a rule has at most %d elements, this one %d", MaxArrayLen, len(args))}
			}
			for i, x := range args {
				inner := level
				if i > 0 { // the first argument is the array, evaluated once; the others per element
					inner++
				}
				if err := checkLimits(x, fmt.Sprintf("%s.%s[%d]", path, op, i), depth+2, inner); err != nil {
					return err
				}
			}
		}
	case []any:
		if len(t) > MaxArrayLen {
			return &Error{Path: path, Limit: "arrayLength", Reason: fmt.Sprintf("an array in a rule has at most %d elements, this one %d", MaxArrayLen, len(t))}
		}
		for i, x := range t {
			if err := checkLimits(x, fmt.Sprintf("%s[%d]", path, i), depth+1, level); err != nil {
				return err
			}
		}
	}
	return nil
}

// estimate is a rule's cost in steps on ordinary data (arrays from event data taken as
// NominalDataArray long), refusing the innermost part whose estimate alone exceeds the budget.
// It only catches rules that are plainly too expensive: the budget bounds the others.
func estimate(v any, path string) (int, error) {
	cost := 1
	switch t := v.(type) {
	case map[string]any:
		for op, arg := range t {
			args, isList := arg.([]any)
			if !iterating[op] || !isList || len(args) < 2 {
				c, err := estimate(arg, path+"."+op)
				if err != nil {
					return 0, err
				}
				cost = add(cost, c)
				break
			}
			n := NominalDataArray
			if lit, ok := args[0].([]any); ok {
				n = len(lit)
			}
			per := 2 // the element's step and its condition's
			for i, x := range args {
				c, err := estimate(x, fmt.Sprintf("%s.%s[%d]", path, op, i))
				if err != nil {
					return 0, err
				}
				if i == 0 {
					cost = add(cost, c)
				} else {
					per = add(per, 2*c) // the condition is copied with the element's fields, then run
				}
			}
			cost = add(cost, mul(n, per))
		}
	case []any:
		cost = add(cost, len(t))
		for i, x := range t {
			c, err := estimate(x, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return 0, err
			}
			cost = add(cost, c)
		}
	case string:
		cost = add(cost, len(t)/bytesPerStep)
	}
	if cost > Budget {
		return 0, &Error{Path: path, Limit: "cost", Reason: fmt.Sprintf(
			"estimated cost of more than %d steps exceeds the evaluation budget (arrays from event data counted as %d elements)",
			Budget, NominalDataArray)}
	}
	return cost, nil
}

// add and mul saturate just above the budget, so estimates of huge rules cannot overflow.
func add(a, b int) int { return min(a+b, Budget+1) }
func mul(a, b int) int {
	if a != 0 && b > (Budget+1)/a {
		return Budget + 1
	}
	return min(a*b, Budget+1)
}
