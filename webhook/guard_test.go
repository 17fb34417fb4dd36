package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckURLRefusesInternalTargets(t *testing.T) {
	g, err := NewGuard(false, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"http://127.0.0.1:8080/x":              "loopback",
		"http://localhost/x":                   "loopback",
		"http://[::1]/x":                       "loopback",
		"http://10.1.2.3/x":                    "private",
		"http://192.168.0.10/x":                "private",
		"http://172.16.5.4/x":                  "private",
		"http://169.254.169.254/latest":        "link-local",
		"http://[fd00:ec2::254]/":              "private",
		"http://239.1.1.1/":                    "multicast",
		"http://0.0.0.0/":                      "unspecified",
		"http://0.1.2.3/":                      "this network",
		"http://100.64.0.1/":                   "carrier-grade NAT",
		"http://192.0.0.192/":                  "IETF protocol",
		"http://198.18.0.1/":                   "benchmarking",
		"http://240.0.0.1/":                    "reserved",
		"http://255.255.255.255/":              "reserved",
		"http://[64:ff9b::a9fe:a9fe]/":         "link-local address (cloud metadata lives there), embedded",
		"http://[64:ff9b::7f00:1]/":            "loopback address, embedded",
		"http://[64:ff9b:1::1]/":               "local-use NAT64",
		"http://[2002:a00:1::1]/":              "private address, embedded in a 6to4",
		"http://[::a9fe:a9fe]/":                "link-local",
		"http://[::ffff:169.254.169.254]/":     "link-local",
		"http://[2001:0:4136:e378::1]/":        "Teredo",
		"http://2130706433/":                   "non-standard form",
		"http://0x7f000001/":                   "non-standard form",
		"http://0177.0.0.1/":                   "non-standard form",
		"http://127.1/":                        "non-standard form",
		"http://0x7f.0.0.1/":                   "non-standard form",
		"http://012.1.2.3/":                    "non-standard form",
		"http://[::ffff:7f00:1]/":              "loopback",
		"http://[fe80::1]/":                    "link-local",
		"http://[fc00::1]/":                    "private",
		"http://[ff0e::1]/":                    "multicast",
		"http://[::]/":                         "unspecified",
		"ftp://example.com/":                   "scheme must be http or https",
		"http://user:pw@example.com/":          "credentials",
		"http:///nohost":                       "no host",
		"https://" + strings.Repeat("a", 2100): "longer than 2048",
	}
	for u, want := range cases {
		err := g.CheckURL(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%.40s) = %v, want %q", u, err, want)
		}
	}
	for _, u := range []string{"https://93.184.215.14/hook", "http://[64:ff9b::5db8:d70e]/", "http://[2002:5db8:d70e::1]/",
		"http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/"} {
		if err := g.CheckURL(context.Background(), u); err != nil {
			t.Errorf("public address %s refused: %v", u, err)
		}
	}
	allow, _ := NewGuard(false, []string{"127.0.0.0/8", "10.9.9.9"})
	for _, u := range []string{"http://127.0.0.1:9/x", "http://10.9.9.9/"} {
		if err := allow.CheckURL(context.Background(), u); err != nil {
			t.Errorf("allow-listed %s refused: %v", u, err)
		}
	}
	if err := allow.CheckURL(context.Background(), "http://10.9.9.8/"); err == nil {
		t.Error("address outside the allow-list accepted")
	}
	if _, err := NewGuard(false, []string{"not-a-cidr"}); err == nil {
		t.Error("bad allow-list entry accepted")
	}
}

// The guard also runs when dialling, so a URL accepted earlier cannot reach an internal address later.
func TestSenderRefusesInternalAddressAtDelivery(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	g, _ := NewGuard(false, nil)
	s := NewSender(g)
	r, err := s.Send(context.Background(), Request{URL: srv.URL, MessageID: "m", Attempt: 1,
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Body: []byte(`{}`), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Succeeded() || !strings.Contains(r.Err, "blocked: 127.0.0.1 is a loopback address") || hits != 0 {
		t.Fatalf("result %+v, hits %d", r, hits)
	}
}

// Redirects are not followed: a receiver cannot bounce the sender to an internal address.
func TestSenderDoesNotFollowRedirects(t *testing.T) {
	internal := 0
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { internal++ }))
	defer target.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redir.Close()
	g, _ := NewGuard(true, nil)
	r, err := NewSender(g).Send(context.Background(), Request{URL: redir.URL, MessageID: "m", Attempt: 1,
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Body: []byte(`{}`), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusFound || r.Succeeded() || internal != 0 {
		t.Fatalf("status %d, internal hits %d", r.Status, internal)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := retryAfter("7", now); d != 7*time.Second {
		t.Errorf("delta seconds: %s", d)
	}
	if d := retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); d != 90*time.Second {
		t.Errorf("http date: %s", d)
	}
	if d := retryAfter("soon", now); d != 0 {
		t.Errorf("garbage: %s", d)
	}
}
