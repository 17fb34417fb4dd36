package portal

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
)

func TestCSPIsStrict(t *testing.T) {
	for _, c := range []struct {
		ancestors []string
		want      string
	}{
		{nil, "frame-ancestors 'none'"},
		{[]string{"https://a.example", "https://b.example"}, "frame-ancestors https://a.example https://b.example"},
	} {
		got := csp(c.ancestors)
		if !strings.HasPrefix(got, "default-src 'self';") || !strings.HasSuffix(got, c.want) || strings.Contains(got, "unsafe") {
			t.Errorf("csp(%v) = %q", c.ancestors, got)
		}
	}
}

func TestValidSettings(t *testing.T) {
	ok := db.PortalSettings{FrameAncestors: pq.StringArray{"https://dash.example.com", "http://localhost:3000"}, AccentColor: "#12abEF",
		LogoURL: "https://cdn.example.com/logo.png", Mode: "dark"}
	if err := ValidSettings(ok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []db.PortalSettings{
		{FrameAncestors: pq.StringArray{"*"}, Mode: "light"},
		{FrameAncestors: pq.StringArray{"https://a.example; script-src *"}, Mode: "light"},
		{FrameAncestors: pq.StringArray{"http://evil.example"}, Mode: "light"},
		{FrameAncestors: pq.StringArray{"https://a.example/path"}, Mode: "light"},
		{FrameAncestors: pq.StringArray{"'self'"}, Mode: "light"},
		{AccentColor: "red; } body { display: none", Mode: "light"},
		{LogoURL: "javascript:alert(1)", Mode: "light"},
		{LogoURL: "http://cdn.example.com/logo.png", Mode: "light"},
		{Mode: "blue"},
	} {
		if err := ValidSettings(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestCSRFTokenIsTheCookiesOwn(t *testing.T) {
	a, b := csrfToken("cookie-a"), csrfToken("cookie-b")
	if a == b || a == "" || strings.Contains(a, "cookie-a") {
		t.Fatalf("tokens %q %q", a, b)
	}
	post := func(form url.Values, header string) bool {
		r := httptest.NewRequest("POST", "/portal/x", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if header != "" {
			r.Header.Set("X-CSRF-Token", header)
		}
		return validCSRF(r, a)
	}
	if !post(url.Values{"csrf": {a}}, "") || !post(nil, a) {
		t.Error("the right token was refused")
	}
	if post(url.Values{"csrf": {b}}, "") || post(nil, "") || post(url.Values{"csrf": {""}}, "") {
		t.Error("a wrong or missing token was accepted")
	}
}

func TestSameOrigin(t *testing.T) {
	h := &Handler{}
	for _, c := range []struct {
		origin, site string
		ok           bool
	}{
		{"", "", true},
		{"http://hookd.test", "same-origin", true},
		{"https://evil.example", "", false},
		{"null", "", false},
		{"", "cross-site", false},
		{"http://hookd.test", "same-site", false},
	} {
		r := httptest.NewRequest("POST", "http://hookd.test/portal/x", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if got := h.sameOrigin(r); got != c.ok {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: %v, want %v", c.origin, c.site, got, c.ok)
		}
	}
}

func TestNarrowedSessionAllows(t *testing.T) {
	all := db.PortalSession{}
	some := db.PortalSession{SubscriptionIDs: pq.StringArray{"sub_1"}}
	if !all.Allows("sub_9") || !all.Allows("") {
		t.Error("a session of the whole app refused one of its subscriptions")
	}
	if !some.Allows("sub_1") || some.Allows("sub_2") || some.Allows("") {
		t.Error("a narrowed session's allowances")
	}
}

func TestFilterResult(t *testing.T) {
	rule := `{"==": [{"var": "event.status"}, "paid"]}`
	if r := filterResult(rule, "order.paid", "", `{"status": "paid"}`); r["Match"] != true {
		t.Errorf("match: %v", r)
	}
	if r := filterResult(rule, "order.paid", "", `{"status": "open"}`); r["Match"] != false {
		t.Errorf("no match: %v", r)
	}
	if r := filterResult(`{"nope": [1]}`, "", "", `{}`); r["Error"] == nil {
		t.Errorf("a bad rule: %v", r)
	}
	if r := filterResult(rule, "", "", `{`); r["Error"] == nil {
		t.Errorf("a bad example: %v", r)
	}
}

func TestTemplatesParse(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(pageNames, "fragments") {
		if pages[name] == nil {
			t.Errorf("no template %s", name)
		}
	}
}

func TestTextOnAccent(t *testing.T) {
	for bg, want := range map[string]string{"#2563eb": "#ffffff", "#000000": "#ffffff", "#ffffff": "#000000", "#ffd700": "#000000", "#0f766e": "#ffffff"} {
		if got := textOn(bg); got != want {
			t.Errorf("textOn(%s) = %s, want %s", bg, got, want)
		}
	}
}

func TestCookieIsSecureBehindTLS(t *testing.T) {
	plain := &Handler{}
	tls := &Handler{Deps: Deps{Config: config.Config{PublicURL: "https://hooks.example.com"}}}
	r := httptest.NewRequest("GET", "http://hookd.test/portal/open", nil)
	if plain.secure(r) || !tls.secure(r) {
		t.Error("Secure follows HOOKD_PUBLIC_URL's scheme")
	}
	if r := httptest.NewRequest("GET", "https://hookd.test/portal/open", nil); !plain.secure(r) {
		t.Error("a TLS request's cookie is not Secure")
	}
}
