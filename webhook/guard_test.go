package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// internalTargets are hosts, as written in a URL, that the guard must refuse both when a URL is
// registered and when the sender dials it, each with a piece of the reason it must give. Names
// ending in .test are answered by the test DNS server from internalZones.
var internalTargets = []struct{ host, want string }{
	// IPv4.
	{"127.0.0.1", "loopback"},
	{"127.255.255.254", "loopback"},
	{"10.1.2.3", "private"},
	{"172.16.5.4", "private"},
	{"172.31.255.255", "private"},
	{"192.168.0.10", "private"},
	{"169.254.169.254", "link-local"}, // cloud metadata
	{"169.254.0.1", "link-local"},
	{"0.0.0.0", "unspecified"},
	{"0.1.2.3", "this network"},
	{"100.64.0.1", "carrier-grade NAT"},
	{"100.127.255.254", "carrier-grade NAT"},
	{"192.0.0.192", "IETF protocol"},
	{"192.0.2.1", "documentation"},
	{"198.51.100.7", "documentation"},
	{"203.0.113.9", "documentation"},
	{"198.18.0.1", "benchmarking"},
	{"198.19.255.254", "benchmarking"},
	{"224.0.0.251", "link-local multicast"},
	{"239.1.1.1", "multicast"},
	{"240.0.0.1", "reserved"},
	{"255.255.255.255", "reserved"},

	// IPv6.
	{"[::1]", "loopback"},
	{"[::]", "unspecified"},
	{"[fc00::1]", "private"},
	{"[fd00:ec2::254]", "private"}, // AWS metadata over IPv6
	{"[fe80::1]", "link-local"},
	{"[fe80::1%25lo]", "link-local"},
	{"[febf::1]", "link-local"},
	{"[fec0::1]", "site-local"},
	{"[ff02::1]", "link-local multicast"},
	{"[ff0e::1]", "multicast"},
	{"[2001:db8::1]", "documentation"},
	{"[3fff::1]", "documentation"},
	{"[100::1]", "discard-only"},

	// IPv4-mapped IPv6.
	{"[::ffff:127.0.0.1]", "loopback"},
	{"[::ffff:7f00:1]", "loopback"},
	{"[::ffff:169.254.169.254]", "link-local"},
	{"[::ffff:10.0.0.1]", "private"},
	{"[::ffff:100.64.0.1]", "carrier-grade NAT"},

	// IPv6 forms carrying an IPv4 address: NAT64, 6to4, IPv4-compatible, Teredo. A zone must not
	// hide the embedded address.
	{"[64:ff9b::a9fe:a9fe]", "link-local address (cloud metadata lives there), embedded"},
	{"[64:ff9b::7f00:1]", "loopback address, embedded"},
	{"[64:ff9b::10.0.0.1]", "private address, embedded"},
	{"[64:ff9b::7f00:1%25lo]", "loopback address, embedded"},
	{"[64:ff9b:1::1]", "local-use NAT64"},
	{"[2002:a00:1::1]", "private address, embedded in a 6to4"},
	{"[2002:7f00:1::1]", "loopback address, embedded in a 6to4"},
	{"[2002:a9fe:a9fe::1]", "link-local address (cloud metadata lives there), embedded in a 6to4"},
	{"[2002:c612:1::1]", "benchmarking address, embedded in a 6to4"},
	{"[2002:7f00:1::1%25lo]", "loopback address, embedded in a 6to4"},
	{"[::a9fe:a9fe]", "link-local"},
	{"[::127.0.0.1]", "loopback address, embedded"},
	{"[::a00:1]", "private address, embedded"},
	{"[2001:0:4136:e378::1]", "Teredo"},
	{"[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "Teredo"},

	// IPv4 in the decimal, octal and hexadecimal forms inet_aton reads.
	{"2130706433", "non-standard form"},
	{"3232235521", "non-standard form"},
	{"0x7f000001", "non-standard form"},
	{"0xa9fea9fe", "non-standard form"},
	{"0177.0.0.1", "non-standard form"},
	{"0251.0376.0251.0376", "non-standard form"},
	{"0x7f.0.0.1", "non-standard form"},
	{"0xA9.0xFE.0xA9.0xFE", "non-standard form"},
	{"127.1", "non-standard form"},
	{"169.254.43518", "non-standard form"},
	{"012.1.2.3", "non-standard form"},
	{"127.0.0.1.", "non-standard form"},
	{"2130706433.", "non-standard form"},

	// Names, resolved by the guard's resolver.
	{"localhost", "loopback"}, // from /etc/hosts
	{"loop4.test", "loopback"},
	{"loop6.test", "loopback"},
	{"meta.test", "link-local"},
	{"ten.test", "private"},
	{"oneseventwo.test", "private"},
	{"oneninetwo.test", "private"},
	{"cgnat.test", "carrier-grade NAT"},
	{"thisnet.test", "unspecified"},
	{"ietf.test", "IETF protocol"},
	{"bench.test", "benchmarking"},
	{"reserved.test", "reserved"},
	{"doc4.test", "documentation"},
	{"doc6.test", "documentation"},
	{"mcast4.test", "multicast"},
	{"mcast6.test", "multicast"},
	{"ula.test", "private"},
	{"ll6.test", "link-local"},
	{"mapped.test", "loopback"},
	{"nat64.test", "loopback address, embedded"},
	{"nat64meta.test", "link-local address (cloud metadata lives there), embedded"},
	{"sixtofour.test", "link-local address (cloud metadata lives there), embedded in a 6to4"},
	{"compat.test", "private address, embedded"},
	{"teredo.test", "Teredo"},
	{"mixed.test", "private"},   // one public and one private address
	{"mixed6.test", "loopback"}, // a public AAAA and a loopback A
	{"cname.test", "link-local"},
	{"fallback.test", "loopback"},
	{"loop4.test.", "loopback"}, // fully qualified
	{"LOOP4.Test", "loopback"},
}

var internalZones = map[string]zone{
	"loop4.test":       {addrs: addrs("127.0.0.1")},
	"loop6.test":       {addrs: addrs("::1")},
	"meta.test":        {addrs: addrs("169.254.169.254")},
	"ten.test":         {addrs: addrs("10.1.2.3")},
	"oneseventwo.test": {addrs: addrs("172.16.0.1")},
	"oneninetwo.test":  {addrs: addrs("192.168.1.1")},
	"cgnat.test":       {addrs: addrs("100.64.1.2")},
	"thisnet.test":     {addrs: addrs("0.0.0.0")},
	"ietf.test":        {addrs: addrs("192.0.0.170")},
	"bench.test":       {addrs: addrs("198.18.0.1")},
	"reserved.test":    {addrs: addrs("240.0.0.1")},
	"doc4.test":        {addrs: addrs("203.0.113.5")},
	"doc6.test":        {addrs: addrs("2001:db8::1")},
	"mcast4.test":      {addrs: addrs("224.0.0.251")},
	"mcast6.test":      {addrs: addrs("ff0e::fb")},
	"ula.test":         {addrs: addrs("fd12:3456::1")},
	"ll6.test":         {addrs: addrs("fe80::1")},
	"mapped.test":      {addrs: addrs("::ffff:127.0.0.1")}, // an AAAA record holding a mapped address
	"nat64.test":       {addrs: addrs("64:ff9b::7f00:1")},
	"nat64meta.test":   {addrs: addrs("64:ff9b::169.254.169.254")},
	"sixtofour.test":   {addrs: addrs("2002:a9fe:a9fe::1")},
	"compat.test":      {addrs: addrs("::10.0.0.1")},
	"teredo.test":      {addrs: addrs("2001:0:4136:e378:8000:63bf:3fff:fdd2")},
	"mixed.test":       {addrs: addrs("93.184.216.34", "10.0.0.1")},
	"mixed6.test":      {addrs: addrs("2606:2800:220:1:248:1893:25c8:1946", "127.0.0.1")},
	"cname.test":       {cname: "meta.test"},
	"fallback.test":    {addrs: addrs("::1", "127.0.0.1")}, // the receiver listens on the second only

	"public.test":     {addrs: addrs("93.184.216.34")},
	"public6.test":    {addrs: addrs("2606:2800:220:1:248:1893:25c8:1946")},
	"publicboth.test": {addrs: addrs("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")},
	"nat64pub.test":   {addrs: addrs("64:ff9b::93.184.216.34")},
}

// testGuard is a guard that refuses internal targets and resolves names with dns.
func testGuard(t *testing.T, dns *testDNS, allowPrivate bool) *Guard {
	t.Helper()
	g, err := NewGuard(allowPrivate, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.resolver = dns.resolver()
	return g
}

func TestCheckURLRefusesInternalTargets(t *testing.T) {
	if n := len(internalTargets); n < 30 {
		t.Fatalf("only %d internal targets", n)
	}
	g := testGuard(t, startDNS(t, internalZones), false)
	for _, c := range internalTargets {
		err := g.CheckURL(context.Background(), "http://"+c.host+":8080/hook")
		var blocked *BlockedError
		if !errors.As(err, &blocked) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckURL(%s) = %v, want a BlockedError saying %q", c.host, err, c.want)
		}
	}
	for u, want := range map[string]string{
		"ftp://example.com/":                   "scheme must be http or https",
		"http://user:pw@example.com/":          "credentials",
		"http:///nohost":                       "no host",
		"https://" + strings.Repeat("a", 2100): "longer than 2048",
		"http://missing.test/":                 "does not resolve",
	} {
		err := g.CheckURL(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%.40s) = %v, want %q", u, err, want)
		}
	}
	for _, u := range []string{"https://93.184.215.14/hook", "http://[64:ff9b::5db8:d70e]/", "http://[2002:5db8:d70e::1]/",
		"http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", "http://[::ffff:93.184.215.14]/", "http://100.63.255.255/",
		"http://100.128.0.1/", "http://172.32.0.1/", "http://198.20.0.1/", "http://public.test/", "http://public6.test:8443/",
		"https://publicboth.test./hook", "http://nat64pub.test/"} {
		if err := g.CheckURL(context.Background(), u); err != nil {
			t.Errorf("public target %s refused: %v", u, err)
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

// A URL that got past registration, or an address that changed since, must still be refused when
// the sender dials. A receiver listens on 127.0.0.1 so that the names resolving there would be
// delivered to if the guard let them through; the error must be the guard's, not a failed connect.
func TestSenderRefusesInternalTargetsWhenDialling(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns := startDNS(t, internalZones)

	// The same names through a guard that allows private targets do reach the receiver, so the
	// test resolver is the one the sender dials with (and a dead address falls back to the next).
	open := NewSender(testGuard(t, dns, true), nil)
	for _, host := range []string{"loop4.test", "fallback.test", "mapped.test"} {
		resp, err := open.client.Get("http://" + host + ":" + port + "/")
		if err != nil {
			t.Fatalf("%s with private targets allowed: %v", host, err)
		}
		resp.Body.Close()
	}
	if n := hits.Swap(0); n != 3 {
		t.Fatalf("receiver hit %d times with private targets allowed, want 3", n)
	}

	s := NewSender(testGuard(t, dns, false), nil)
	for _, c := range internalTargets {
		t.Run(c.host, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.host+":"+port+"/hook", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.client.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("delivered, status %d", resp.StatusCode)
			}
			var blocked *BlockedError
			if !errors.As(err, &blocked) || !strings.Contains(blocked.Error(), c.want) {
				t.Fatalf("error %v, want a BlockedError saying %q", err, c.want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("receiver hit %d times", n)
	}
}

// DNS rebinding: a name that is public when registered and points at loopback when delivered to.
func TestSenderRefusesRebindingAtDelivery(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dns := startDNS(t, map[string]zone{"rebind.test": {addrs: addrs("93.184.216.34"), later: addrs("127.0.0.1")}})
	g := testGuard(t, dns, false)
	u := "http://rebind.test:" + port + "/hook"
	if err := g.CheckURL(context.Background(), u); err != nil {
		t.Fatalf("registration refused the public answer: %v", err)
	}
	r, err := NewSender(g, nil).Send(context.Background(), Request{URL: u, MessageID: "m", Attempt: 1,
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Body: []byte(`{}`), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Succeeded() || !strings.Contains(r.Err, "blocked: rebind.test (127.0.0.1) is a loopback address") || hits.Load() != 0 {
		t.Fatalf("result %+v, hits %d", r, hits.Load())
	}
}

// The guard also runs when dialling, so a URL accepted earlier cannot reach an internal address later.
func TestSenderRefusesInternalAddressAtDelivery(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	g, _ := NewGuard(false, nil)
	s := NewSender(g, nil)
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
	r, err := NewSender(g, nil).Send(context.Background(), Request{URL: redir.URL, MessageID: "m", Attempt: 1,
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
