package filter

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSeedForms(t *testing.T) {
	cases := []struct {
		rule, typ, data string
		want            bool
	}{
		{`{"===":[{"var":"event.state"},"active:available"]}`, "x", `{"state":"active:available"}`, true},
		{`{"===":[{"var":"event.state"},"active:available"]}`, "x", `{"state":"inactive"}`, false},
		{`{"===":["$eventType","usercreatedevent"]}`, "usercreatedevent", `{}`, true},
		{`{"===":["$eventType","usercreatedevent"]}`, "userupdatedevent", `{}`, false},
		{`{"===":[{"var":"$eventType"},"a"]}`, "a", `{}`, true},
		{`{"and":[{">":[{"var":"event.n"},2]},{"in":["$topic",["entity","container"]]}]}`, "t", `{"n":3}`, true},
		{`true`, "t", `{}`, true},
		{``, "t", `{}`, true},
	}
	for _, c := range cases {
		f, err := Compile(json.RawMessage(c.rule))
		if err != nil {
			t.Fatalf("Compile(%s): %v", c.rule, err)
		}
		got, err := f.Match(c.typ, "entity", json.RawMessage(c.data))
		if err != nil || got != c.want {
			t.Errorf("%s on %s/%s = %v, %v; want %v", c.rule, c.typ, c.data, got, err, c.want)
		}
	}
}

func TestCompileSaysWhere(t *testing.T) {
	cases := map[string]string{
		`{"and":[{"==":[1,1]},{"bogus":[1]}]}`: `$.and[1]: unknown operator "bogus"`,
		`{"==":[1,1],"!=":[1,2]}`:              `$: an operation has exactly one operator`,
		`"x"`:                                  `$: a rule must be an object`,
		`{"==":[1,`:                            `$: not valid JSON`,
	}
	for rule, want := range cases {
		_, err := Compile(json.RawMessage(rule))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Compile(%s) = %v, want prefix %q", rule, err, want)
		}
	}
}

func TestRuntimeErrorIsNoMatch(t *testing.T) {
	f, err := Compile(json.RawMessage(`{"+":["a",{"var":"event"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := f.Match("t", "", json.RawMessage(`{"x":1}`))
	if ok || err == nil {
		t.Fatalf("Match = %v, %v; want false with an error", ok, err)
	}
}

func FuzzFilter(f *testing.F) {
	f.Add(`{"===":[{"var":"event.state"},"active:available"]}`, `{"state":"active:available"}`)
	f.Add(`{"===":["$eventType","usercreatedevent"]}`, `{}`)
	f.Add(`{"map":[{"var":"event"},{"+":[1]}]}`, `[1,2]`)
	f.Add(`{"reduce":[{"var":"event"},{"cat":["a"]},0]}`, `null`)
	f.Fuzz(func(t *testing.T, rule, data string) {
		flt, err := Compile(json.RawMessage(rule))
		if err != nil {
			return
		}
		_, _ = flt.Match("t", "topic", json.RawMessage(data)) // must not panic
	})
}
