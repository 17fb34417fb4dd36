package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func known(t string) bool { return t == "entity" }

func TestDecodePublish(t *testing.T) {
	cases := []struct {
		body   string
		status int
		detail string
	}{
		{`{"type":"a","data":{"x":1}}`, 0, ""},
		{`{"type":"a","topic":"entity"}`, 0, ""},
		{`{"type":"a","topic":"nope"}`, 404, "unknown topic"},
		{`{"data":{}}`, 400, "type: required"},
		{`{"type":"a b"}`, 400, "type: 1 to 128"},
		{`{"type":"a","id":"has space"}`, 400, "id: 1 to 128"},
		{`{"type":"a","extra":1}`, 400, "unknown field"},
		{`{"type":"a"} {}`, 400, "data after"},
		{`{"type":"a","data":"` + strings.Repeat("x", 100) + `"}`, 413, "larger than 64 bytes"},
		{`[`, 400, "malformed JSON"},
	}
	for _, c := range cases {
		req, err := decodePublish([]byte(c.body), 64, known)
		if c.status == 0 {
			if err != nil || req.ID == "" || !json.Valid(req.Data) {
				t.Errorf("%s: %+v, %v", c.body, req, err)
			}
			continue
		}
		var re *requestError
		if !errors.As(err, &re) || re.Status != c.status || !strings.Contains(re.Detail, c.detail) {
			t.Errorf("%s: err %v, want %d %q", c.body, err, c.status, c.detail)
		}
	}
}

func FuzzDecodePublish(f *testing.F) {
	f.Add([]byte(`{"id":"evt-1","type":"order.created","topic":"entity","data":{"a":[1,2,{"b":null}]}}`))
	f.Add([]byte(`{"type":"x","data":null,"callbackUrl":"http://example.com"}`))
	f.Add([]byte(`{"type":"\u0000","data":"\ud800"}`))
	f.Add([]byte(`{"type":"x","data":1e999}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodePublish(body, 1<<10, known)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 {
				t.Fatalf("refusal is not a 4xx: %v", err)
			}
			if re.Status == http.StatusInternalServerError {
				t.Fatal("500 for input")
			}
			return
		}
		// Whatever is accepted can be stored and delivered as it is.
		if !eventName.MatchString(req.ID) || !eventName.MatchString(req.Type) || !json.Valid(req.Data) || len(req.Data) > 1<<10 {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
	})
}
