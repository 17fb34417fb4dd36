package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	jsonlogic "github.com/diegoholiveira/jsonlogic/v3"
)

// list is a JSON array of n distinct strings.
func list(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%q", fmt.Sprintf("v%d", i))
	}
	return "[" + strings.Join(s, ",") + "]"
}

// nest wraps inner in n "some" over a literal array of k numbers.
func nest(n, k int, inner string) string {
	arr := make([]string, k)
	for i := range arr {
		arr[i] = fmt.Sprint(i)
	}
	for range n {
		inner = fmt.Sprintf(`{"some":[[%s],%s]}`, strings.Join(arr, ","), inner)
	}
	return inner
}

// theIssuesRule is the 4 KB rule of issue 24: three nested "some" over 300-element arrays.
var theIssuesRule = nest(3, 300, `{"==":[{"var":""},-1]}`)

func TestCompileLimitsSayWhichAndWhere(t *testing.T) {
	deep := `true`
	for range MaxDepth {
		deep = `{"!!":[` + deep + `]}`
	}
	cases := []struct{ name, rule, limit, path string }{
		{"size", `{"in":[{"var":"event.id"},` + list(1200) + `]}`, "size", "$"},
		{"depth", deep, "depth", "$" + strings.Repeat(".!![0]", MaxDepth/2)},
		{"array", `{"in":[{"var":"event.id"},` + list(MaxArrayLen+1) + `]}`, "arrayLength", "$.in[1]"},
		{"nesting", nest(3, 2, `true`), "iteratorNesting", "$.some[1].some[1].some"},
		{"issue", theIssuesRule, "arrayLength", "$.some[0]"},
		{"cost", nest(2, 200, `{"in":[{"var":""},`+list(10)+`]}`), "cost", "$"},
		{"cost over data", `{"some":[{"var":"event.a"},{"some":[{"var":"b"},{"in":[{"var":""},` + list(250) + `]}]}]}`, "cost", "$"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(json.RawMessage(c.rule))
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Compile = %v, want a *filter.Error", err)
			}
			if fe.Limit != c.limit || fe.Path != c.path {
				t.Fatalf("Compile = limit %q at %q (%v), want limit %q at %q", fe.Limit, fe.Path, err, c.limit, c.path)
			}
			if _, err := Parse(json.RawMessage(c.rule)); err != nil {
				t.Fatalf("Parse (a stored rule) = %v, want no limits", err)
			}
		})
	}
}

func TestCompileAcceptsOrdinaryRules(t *testing.T) {
	for _, rule := range []string{
		`{"in":[{"var":"event.id"},` + list(MaxArrayLen) + `]}`,
		nest(2, 20, `{"==":[{"var":""},3]}`),
		`{"some":[{"var":"event.items"},{"in":[{"var":"sku"},` + list(100) + `]}]}`,
		`{"and":[{"===":["$eventType","order.paid"]},{">=":[{"var":"event.total"},100]},{"!":{"var":"event.test"}}]}`,
	} {
		if _, err := Compile(json.RawMessage(rule)); err != nil {
			t.Errorf("Compile(%.80s…) = %v", rule, err)
		}
	}
}

// bigArray is event data {"xs":[...n strings...]}, about 10 bytes an element.
func bigArray(n int) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"xs":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"x%06d"`, i)
	}
	b.WriteString(`],"s":"` + strings.Repeat("é", 60_000) + `"}`)
	return json.RawMessage(b.String())
}

// hostile are rules registration accepts that cost the most on large event data, each in its
// own way: compares per element, strings built, runes converted, data copied, logic from data.
var hostile = map[string]string{
	"in per element":  `{"some":[{"var":"event.xs"},{"in":[{"var":""},` + list(MaxArrayLen) + `]}]}`,
	"string building": `{"reduce":[{"var":"event.xs"},{"cat":[{"var":"accumulator"},{"var":"current"}]},""]}`,
	"substr per item": `{"some":[{"var":"event.xs"},{"substr":[{"var":"x"},1]}]}`,
	"copies":          `{"some":[{"var":"event.xs"},{"!":[{"merge":[{"var":"event.xs"},{"var":"event.xs"}]}]}]}`,
	"deep copies":     `{"filter":[{"var":"event.xs"},{"set":[{"var":"event"},"k",1]}]}`,
	"equal strings":   `{"some":[{"var":"event.xs"},{"==":[{"var":"event.s"},{"cat":[{"var":"event.s"},"x"]}]}]}`,
	"string search":   `{"some":[{"var":"event.xs"},{"in":["zz",{"var":"event.s"}]}]}`,
}

func TestBudgetStopsHostileRules(t *testing.T) {
	ev := &Event{Type: "t", Topic: "entity", Data: bigArray(20_000)}
	for name, rule := range hostile {
		t.Run(name, func(t *testing.T) {
			f, err := Compile(json.RawMessage(rule))
			if err != nil {
				t.Fatalf("registration refused it: %v", err)
			}
			start := time.Now()
			ok, err := f.MatchEvent(ev)
			took := time.Since(start)
			if ok || !errors.Is(err, ErrBudget) {
				t.Fatalf("MatchEvent = %v, %v; want no match with ErrBudget", ok, err)
			}
			// Generous for a shared CI machine; BenchmarkHostile measures it (about 10 ms).
			if took > 500*time.Millisecond {
				t.Fatalf("spending the budget took %v", took)
			}
		})
	}
}

func TestBudgetStopsTheIssuesRule(t *testing.T) {
	// Stored before the limits: evaluated, within the budget.
	f, err := Parse(json.RawMessage(theIssuesRule))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, err := f.Match("t", "entity", json.RawMessage(`{}`))
	if ok || !errors.Is(err, ErrBudget) {
		t.Fatalf("Match = %v, %v; want no match with ErrBudget", ok, err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("took %v (the library: 34 s)", took)
	}
}

func TestEventIsParsedOnceAndNotModified(t *testing.T) {
	ev := &Event{Type: "t", Data: json.RawMessage(`{"a":{"b":1},"xs":[3,1,2]}`)}
	for _, rule := range []string{
		`{"set":[{"var":"event.a"},"b",2]}`,
		`{"merge":[{"var":"event.xs"},[4]]}`,
		`{"reduce":[{"var":"event.xs"},{"+":[{"var":"current"},{"var":"accumulator"}]},0]}`,
		`{"some":[{"var":"event.xs"},{"==":[{"var":""},1]}]}`,
	} {
		f, err := Compile(json.RawMessage(rule))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.MatchEvent(ev); err != nil {
			t.Fatalf("%s: %v", rule, err)
		}
	}
	got, _ := json.Marshal(ev.doc["event"])
	if string(got) != `{"a":{"b":1},"xs":[3,1,2]}` {
		t.Fatalf("event data became %s", got)
	}
}

// typical is a subscription filter as people write them.
const typical = `{"and":[{"===":["$eventType","order.paid"]},{">=":[{"var":"event.total"},100]},{"in":[{"var":"event.currency"},["EUR","USD","GBP"]]}]}`

var typicalData = json.RawMessage(`{"id":"ord_1","total":120.5,"currency":"EUR","lines":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}`)

// BenchmarkTypical is one evaluation of a typical filter on a parsed event (the fan-out parses
// an event once for all its subscribers).
func BenchmarkTypical(b *testing.B) {
	f, err := Compile(json.RawMessage(typical))
	if err != nil {
		b.Fatal(err)
	}
	ev := &Event{Type: "order.paid", Topic: "orders", Data: typicalData}
	for b.Loop() {
		if ok, err := f.MatchEvent(ev); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkTypicalLibrary is the same evaluation with the library, as before.
func BenchmarkTypicalLibrary(b *testing.B) {
	f, err := Compile(json.RawMessage(typical))
	if err != nil {
		b.Fatal(err)
	}
	ev := &Event{Type: "order.paid", Topic: "orders", Data: typicalData}
	doc, _ := ev.document()
	for b.Loop() {
		if out, err := jsonlogic.ApplyInterface(f.rule, doc); err != nil || out != true {
			b.Fatal(out, err)
		}
	}
}

// BenchmarkTypicalBefore is what the fan-out did per subscriber before: compile, parse the
// event data and evaluate with the library.
func BenchmarkTypicalBefore(b *testing.B) {
	for b.Loop() {
		f, err := Compile(json.RawMessage(typical))
		if err != nil {
			b.Fatal(err)
		}
		var payload any
		if err := json.Unmarshal(typicalData, &payload); err != nil {
			b.Fatal(err)
		}
		doc := map[string]any{"event": payload, "$eventType": "order.paid", "$topic": "orders"}
		if out, err := jsonlogic.ApplyInterface(f.rule, doc); err != nil || out != true {
			b.Fatal(out, err)
		}
	}
}

// BenchmarkHostile is the time a hostile rule takes to spend the whole budget.
func BenchmarkHostile(b *testing.B) {
	ev := &Event{Type: "t", Topic: "entity", Data: bigArray(20_000)}
	if _, err := ev.document(); err != nil {
		b.Fatal(err)
	}
	for name, rule := range hostile {
		f, err := Compile(json.RawMessage(rule))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			for b.Loop() {
				if _, err := f.MatchEvent(ev); !errors.Is(err, ErrBudget) {
					b.Fatal(err)
				}
			}
		})
	}
}
