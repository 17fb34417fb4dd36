package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BlockedError says an address was refused by the SSRF guard.
type BlockedError struct {
	Addr   string
	Reason string
}

func (e *BlockedError) Error() string { return fmt.Sprintf("blocked: %s is %s", e.Addr, e.Reason) }

// Guard refuses callbacks to addresses inside our own network: loopback, private, link-local
// (which covers cloud metadata at 169.254.169.254), multicast, unspecified, reserved and special
// purpose ranges, and IPv6 addresses that embed one of those IPv4 addresses (NAT64, 6to4,
// IPv4-compatible).
type Guard struct {
	// AllowPrivate lets everything through; for development and tests whose receivers run on loopback.
	AllowPrivate bool
	// Allow lists networks that are allowed although they are private (an explicit allow-list).
	Allow []netip.Prefix
	// resolver answers both CheckURL and the sender's dials, so what registration vetted and what
	// delivery connects to come from the same place (and tests can put their own DNS server there).
	resolver *net.Resolver
}

// NewGuard builds a guard; allow holds CIDRs or single addresses to let through.
func NewGuard(allowPrivate bool, allow []string) (*Guard, error) {
	g := &Guard{AllowPrivate: allowPrivate, resolver: net.DefaultResolver}
	for _, a := range allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, ierr := netip.ParseAddr(a)
			if ierr != nil {
				return nil, fmt.Errorf("allowed target %q: not a CIDR or an IP address", a)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		g.Allow = append(g.Allow, p)
	}
	return g, nil
}

// refuse says why ip may not be called, or "" if it may.
func (g *Guard) refuse(ip netip.Addr) string {
	why := classify(ip)
	if why == "" {
		return ""
	}
	for _, p := range g.Allow {
		if p.Contains(ip.Unmap()) {
			return ""
		}
	}
	return why
}

// special lists the IPv4 ranges that are not the public internet beyond what netip classifies.
var special = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `a "this network" address`},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address (some clouds' metadata lives there)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
}

// special6 lists the IPv6 ranges that are not the public internet beyond what netip classifies.
var special6 = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	// Site-local was deprecated, but networks that still route it route it internally.
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

// IPv6 ranges that carry an IPv4 address: the guard judges the IPv4 address inside.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	compatible = netip.MustParsePrefix("::/96") // IPv4-compatible (deprecated), ::a.b.c.d
	teredo     = netip.MustParsePrefix("2001::/32")
)

func classify(ip netip.Addr) string {
	// Prefixes never contain a zoned address, so a zone (fe80::1%eth0, 64:ff9b::7f00:1%lo) would
	// slip an address past every range check below; the zone does not change where it goes.
	ip = ip.WithZone("").Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (cloud metadata lives there)"
	case ip.IsLinkLocalMulticast():
		return "a link-local multicast address"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip == netip.MustParseAddr("fd00:ec2::254"):
		return "a cloud metadata address"
	}
	if ip.Is4() {
		for _, r := range special {
			if r.prefix.Contains(ip) {
				return r.why
			}
		}
		return ""
	}
	for _, r := range special6 {
		if r.prefix.Contains(ip) {
			return r.why
		}
	}
	b := ip.As16()
	switch {
	case nat64Local.Contains(ip):
		return "a local-use NAT64 address"
	case nat64.Contains(ip), compatible.Contains(ip):
		if why := classify(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
			return why + ", embedded in an IPv6 address"
		}
	case sixToFour.Contains(ip):
		if why := classify(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
			return why + ", embedded in a 6to4 address"
		}
	case teredo.Contains(ip):
		// The client address inside is obfuscated and the relay decides where it goes.
		return "a Teredo address"
	}
	return ""
}

// numericHost reports a host that is not a dotted-quad IPv4 address but that inet_aton would read
// as one: one to four parts, each decimal, octal (leading 0) or hexadecimal (0x). A trailing dot
// counts too (127.0.0.1., 2130706433.): URL parsers and some resolvers drop it.
func numericHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 0, 32); err != nil {
			return false
		}
	}
	return true
}

// control runs on every connect, after DNS resolution, whoever resolved the name: it is the last
// word on each address the sender actually connects to.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Addr: address, Reason: "not an IP address"}
	}
	if why := g.refuse(ap.Addr()); why != "" {
		return &BlockedError{Addr: ap.Addr().String(), Reason: why}
	}
	return nil
}

// CheckURL validates a callback URL at registration: http or https, a host, and (unless private
// targets are allowed) a host that resolves only to public addresses.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > 2048 {
		return fmt.Errorf("url is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url does not parse: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("url has no host")
	}
	if u.User != nil {
		return fmt.Errorf("url must not carry credentials; use a callback key")
	}
	if g.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if numericHost(host) {
		// 2130706433, 0x7f000001, 0177.0.0.1, 127.1: some resolvers read these as IPv4 addresses.
		return &BlockedError{Addr: host, Reason: "an IP address in a non-standard form; write it as a.b.c.d"}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := g.refuse(ip); why != "" {
			return &BlockedError{Addr: host, Reason: why}
		}
		return nil
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("url host %q does not resolve: %v", host, err)
	}
	return g.refuseAny(host, addrs)
}

// refuseAny refuses a name if any of its addresses is refused. One internal address among public
// ones is how DNS rebinding is usually set up, and nothing legitimate needs it.
func (g *Guard) refuseAny(host string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if why := g.refuse(a); why != "" {
			return &BlockedError{Addr: host + " (" + a.String() + ")", Reason: why}
		}
	}
	return nil
}

// dial is the sender's DialContext. It resolves names itself, with the guard's resolver, and
// applies CheckURL's rule to the whole answer, so a name rebound since registration to a mix of
// public and internal addresses is refused rather than half-trusted; d's Control (the guard's
// control) still judges every address actually connected to, literal ones included.
func (g *Guard) dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return d.DialContext(ctx, network, address)
	}
	if !g.AllowPrivate && numericHost(host) {
		// Some resolvers (getaddrinfo) would read 2130706433 as 127.0.0.1; don't ask them.
		return nil, &net.OpError{Op: "dial", Net: network,
			Err: &BlockedError{Addr: host, Reason: "an IP address in a non-standard form; write it as a.b.c.d"}}
	}
	lookup := "ip"
	switch network {
	case "tcp4", "udp4":
		lookup = "ip4"
	case "tcp6", "udp6":
		lookup = "ip6"
	}
	addrs, err := g.resolver.LookupNetIP(ctx, lookup, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if !g.AllowPrivate {
		if err := g.refuseAny(host, addrs); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}
	if len(addrs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}}
	}
	// Try the addresses in the resolver's order, as net.Dialer does, sharing its timeout among
	// them so a dead first address does not use up the whole budget.
	deadline := time.Time{}
	if d.Timeout > 0 {
		deadline = time.Now().Add(d.Timeout)
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	var first error
	for i, a := range addrs {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			actx, cancel = context.WithDeadline(ctx, partialDeadline(time.Now(), deadline, len(addrs)-i))
		}
		c, err := d.DialContext(actx, network, net.JoinHostPort(a.String(), port))
		cancel()
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// partialDeadline gives one of the remaining addresses its share of the time left, but at least
// two seconds (the same floor net.Dialer uses) when there is that much.
func partialDeadline(now, deadline time.Time, remaining int) time.Time {
	left := deadline.Sub(now)
	share := left / time.Duration(remaining)
	const floor = 2 * time.Second
	if share < floor {
		share = min(floor, left)
	}
	return now.Add(share)
}
