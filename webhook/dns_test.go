package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// zone is what the test DNS server knows about one name.
type zone struct {
	addrs []netip.Addr // A and AAAA answers
	// later, when set, replaces addrs from the second query of a type on: the first lookup
	// (registration) sees addrs, the next (delivery) sees later, as in DNS rebinding.
	later []netip.Addr
	cname string // answered as a CNAME to this name, followed by that name's addresses
}

// testDNS is a DNS server on loopback (UDP and TCP) answering A and AAAA queries from a table,
// so tests can make a name resolve to any address, internal ones included, without real DNS.
type testDNS struct {
	zones   map[string]zone // keyed by lower-case fully qualified name
	udp     net.PacketConn
	tcp     net.Listener
	mu      sync.Mutex
	queries map[string]int // queries seen per "name type"
}

// startDNS serves zones until the test ends. Names are written with or without the final dot.
func startDNS(t *testing.T, zones map[string]zone) *testDNS {
	t.Helper()
	s := &testDNS{zones: map[string]zone{}, queries: map[string]int{}}
	for name, z := range zones {
		s.zones[fqdn(name)] = z
	}
	var err error
	if s.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.serveUDP() }()
	go func() { defer wg.Done(); s.serveTCP() }()
	t.Cleanup(func() { s.udp.Close(); s.tcp.Close(); wg.Wait() })
	return s
}

func fqdn(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

// resolver asks only this server. PreferGo keeps getaddrinfo out of it (it would not use Dial);
// /etc/hosts is still read, so localhost resolves as it does in production.
func (s *testDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		if strings.HasPrefix(network, "tcp") {
			return d.DialContext(ctx, network, s.tcp.Addr().String())
		}
		return d.DialContext(ctx, network, s.udp.LocalAddr().String())
	}}
}

func (s *testDNS) serveUDP() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, err := s.answer(buf[:n]); err == nil {
			s.udp.WriteTo(resp, from)
		}
	}
}

// serveTCP answers length-prefixed queries, for resolvers configured with use-vc or retrying a
// truncated answer.
func (s *testDNS) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var n uint16
				if binary.Read(c, binary.BigEndian, &n) != nil {
					return
				}
				q := make([]byte, n)
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				resp, err := s.answer(q)
				if err != nil {
					return
				}
				if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp)))); err != nil {
					return
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}

func (s *testDNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	qh, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := fqdn(q.Name.String())
	z, ok := s.zones[name]
	s.mu.Lock()
	key := name + " " + q.Type.String()
	s.queries[key]++
	seen := s.queries[key]
	s.mu.Unlock()

	h := dnsmessage.Header{ID: qh.ID, Response: true, Authoritative: true,
		RecursionDesired: qh.RecursionDesired, RecursionAvailable: true}
	if !ok {
		h.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	owner := q.Name
	if z.cname != "" {
		target, err := dnsmessage.NewName(fqdn(z.cname))
		if err != nil {
			return nil, err
		}
		rh := dnsmessage.ResourceHeader{Name: owner, Class: dnsmessage.ClassINET}
		if err := b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: target}); err != nil {
			return nil, err
		}
		owner, z = target, s.zones[fqdn(z.cname)]
	}
	addrs := z.addrs
	if z.later != nil && seen > 1 {
		addrs = z.later
	}
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: owner, Class: dnsmessage.ClassINET}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// The server must really answer, or every "refused" below could be a lookup failure.
func TestTestDNSAnswers(t *testing.T) {
	dns := startDNS(t, map[string]zone{
		"both.test":  {addrs: addrs("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")},
		"alias.test": {cname: "both.test"},
	})
	r := dns.resolver()
	for _, name := range []string{"both.test", "alias.test."} {
		got, err := r.LookupNetIP(context.Background(), "ip", name)
		if err != nil || len(got) != 2 {
			t.Errorf("lookup %s = %v, %v; want both addresses", name, got, err)
		}
	}
	_, err := r.LookupNetIP(context.Background(), "ip", "missing.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("lookup of an unknown name: %v, want not found", err)
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}
