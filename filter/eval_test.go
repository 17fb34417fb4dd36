package filter

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	jsonlogic "github.com/diegoholiveira/jsonlogic/v3"
)

// reference runs the library on its own copy of the rule, as filters ran before the budgeted
// evaluator; ok is false when the library failed.
func reference(raw json.RawMessage, doc map[string]any) (out any, ok bool) {
	f, err := Parse(raw)
	if err != nil || f.rule == nil {
		return nil, false
	}
	defer func() {
		if r := recover(); r != nil { // a panic the library's own recover cannot turn into an error
			out, ok = nil, false
		}
	}()
	out, err = jsonlogic.ApplyInterface(f.rule, doc)
	return out, err == nil
}

// same is deep equality in which NaN equals NaN.
func same(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) || (x == nil) != (y == nil) {
			return false
		}
		for i := range x {
			if !same(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, found := y[k]
			if !found || !same(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func document(t testing.TB, data string) (map[string]any, bool) {
	ev := &Event{Type: "user.created", Topic: "entity", Data: json.RawMessage(data)}
	doc, err := ev.document()
	return doc, err == nil
}

// FuzzEvaluatorAgrees checks the budgeted evaluator against the library it replaces: wherever
// the library answers and the budget is not spent, both answer the same. It also runs over its
// seed corpus (testdata/fuzz/FuzzEvaluatorAgrees) as an ordinary test.
func FuzzEvaluatorAgrees(f *testing.F) {
	for _, s := range agreeSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rule, data string) {
		flt, err := Parse(json.RawMessage(rule))
		if err != nil || flt.rule == nil {
			return
		}
		doc, ok := document(t, data)
		if !ok {
			return
		}
		ours, _, err := flt.eval(doc, Budget)
		if errors.Is(err, ErrBudget) {
			return // the library would run for as long as it likes
		}
		theirs, ok := reference(json.RawMessage(rule), doc)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("rule %s on %s: library gave %#v, ours failed: %v", rule, data, theirs, err)
		}
		if !same(ours, theirs) {
			// A data object with "var" and other keys makes both depend on map order: try again.
			for range 8 {
				if again, ok := reference(json.RawMessage(rule), doc); ok && same(ours, again) {
					return
				}
			}
			t.Fatalf("rule %s on %s: ours %#v, library %#v", rule, data, ours, theirs)
		}
	})
}

// agreeSeeds covers every operator the library knows, with odd types and odd shapes.
var agreeSeeds = [][2]string{
	{`{"===":[{"var":"event.state"},"active:available"]}`, `{"state":"active:available"}`},
	{`{"===":["$eventType","user.created"]}`, `{}`},
	{`{"==":[1,"1"]}`, `null`},
	{`{"==":[null,null]}`, `null`},
	{`{"==":[true,1]}`, `null`},
	{`{"!=":["a","b"]}`, `null`},
	{`{"!==":[1,"1"]}`, `null`},
	{`{"===":[[1],[1]]}`, `null`},
	{`{"!":[[]]}`, `null`},
	{`{"!!":["0"]}`, `null`},
	{`{"!":{"var":"event.x"}}`, `{"x":0}`},
	{`{"or":[0,"",{"var":"event.a"}]}`, `{"a":[1]}`},
	{`{"and":[1,3,2]}`, `null`},
	{`{"and":[true,"",1]}`, `null`},
	{`{"and":[[],true]}`, `null`},
	{`{">":[{"var":"event.n"},2]}`, `{"n":3}`},
	{`{">=":["b","a"]}`, `null`},
	{`{"<":[1,{"var":"event.n"},3]}`, `{"n":2}`},
	{`{"<=":[1,2,2]}`, `null`},
	{`{"<":["1e400",1]}`, `null`},
	{`{"<":[null,true]}`, `null`},
	{`{"<":[1]}`, `null`},
	{`{"<":[1,{"var":"event.r"},3]}`, `{"r":{"==":[1,1]}}`},
	{`{"max":[1,"7",3]}`, `null`},
	{`{"min":[]}`, `null`},
	{`{"+":[1,"2",3.5]}`, `null`},
	{`{"+":"4"}`, `null`},
	{`{"-":[10,2,3]}`, `null`},
	{`{"-":[5]}`, `null`},
	{`{"*":[2,"x"]}`, `null`},
	{`{"/":[1,0]}`, `null`},
	{`{"%":[7,{"var":"event.m"}]}`, `{"m":3}`},
	{`{"abs":-3}`, `null`},
	{`{"if":[{"var":"event.a"},"yes","no"]}`, `{"a":true}`},
	{`{"if":[false,1,{"var":"event.b"},2,3]}`, `{"b":"x"}`},
	{`{"if":[]}`, `null`},
	{`{"?:":[true,1,2]}`, `null`},
	{`{"in":["b",["a","b"]]}`, `null`},
	{`{"in":[3,[1,[2,4]]]}`, `null`},
	{`{"in":["ell","hello"]}`, `null`},
	{`{"in":["$topic",["entity","container"]]}`, `null`},
	{`{"in_sorted":["c",["a",["b","d"],"x"]]}`, `null`},
	{`{"cat":["a",1,null," b "]}`, `null`},
	{`{"cat":"x"}`, `null`},
	{`{"substr":["hello",-3,2]}`, `null`},
	{`{"substr":["héllo",1]}`, `null`},
	{`{"substr":["hello",1,-1]}`, `null`},
	{`{"merge":[[1,[2]],3,[[4]]]}`, `null`},
	{`{"merge":{"var":"event.xs"}}`, `{"xs":[[1],[2,[3]]]}`},
	{`{"missing":["a","event.b","event.c"]}`, `{"b":1}`},
	{`{"missing":"event.z"}`, `{}`},
	{`{"missing_some":[1,["event.a","event.b"]]}`, `{"a":1}`},
	{`{"missing_some":[2,["event.a","event.b"]]}`, `{"a":1}`},
	{`{"var":["event.missing","fallback"]}`, `{}`},
	{`{"var":"event.xs.1"}`, `{"xs":[1,2]}`},
	{`{"var":"event.s.x"}`, `{"s":"str"}`},
	{`{"var":""}`, `{"a":1}`},
	{`{"var":1}`, `null`},
	{`{"var":{"cat":["event",".a"]}}`, `{"a":5}`},
	{`{"map":[{"var":"event.xs"},{"*":[{"var":""},2]}]}`, `{"xs":[1,2,3]}`},
	{`{"map":[[0,1,""],{"var":""}]}`, `null`},
	{`{"filter":[{"var":"event.xs"},{">":[{"var":""},1]}]}`, `{"xs":[1,2,3]}`},
	{`{"filter":[{"var":"event.none"},true]}`, `{}`},
	{`{"reduce":[{"var":"event.xs"},{"+":[{"var":"current"},{"var":"accumulator"}]},0]}`, `{"xs":[1,2,3,null]}`},
	{`{"reduce":[["a","b"],{"cat":[{"var":"accumulator"},{"var":"current"}]},""]}`, `null`},
	{`{"reduce":[[1,0],{"var":"current"},true]}`, `null`},
	{`{"all":[{"var":"event.xs"},{">":[{"var":""},0]}]}`, `{"xs":[1,2]}`},
	{`{"all":[[],true]}`, `null`},
	{`{"none":[{"var":"event.xs"},{"==":[{"var":""},2]}]}`, `{"xs":[1,3]}`},
	{`{"some":[{"var":"event.items"},{"==":[{"var":"sku"},"b"]}]}`, `{"items":[{"sku":"a"},{"sku":"b"}]}`},
	{`{"some":[{"var":"event.items"},{"var":"rule"}]}`, `{"items":[{"rule":{"==":[1,1]}}]}`},
	{`{"some":[[1,2],{"some":[[3,4],{"==":[{"var":""},4]}]}]}`, `null`},
	{`{"set":[{"var":"event"},"k",{"var":"event.a"}]}`, `{"a":1}`},
	{`{"==":[{"var":"event.a"},{"var":"event.b"}]}`, `{"a":{"x":1},"b":{"y":2}}`},
	{`{"in":[{"var":"event.a"},[{"var":"event.b"}]]}`, `{"a":{"x":1},"b":{"x":1}}`},
	{`true`, `{}`},
	{`{"+":[{"var":"event.big"},1]}`, `{"big":1e308}`},
}
