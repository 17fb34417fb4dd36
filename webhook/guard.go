package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
)

// BlockedError says an address was refused by the SSRF guard.
type BlockedError struct {
	Addr   string
	Reason string
}

func (e *BlockedError) Error() string { return fmt.Sprintf("blocked: %s is %s", e.Addr, e.Reason) }

// Guard refuses callbacks to addresses inside our own network: loopback, private, link-local
// (which covers cloud metadata at 169.254.169.254), multicast and unspecified addresses.
type Guard struct {
	// AllowPrivate lets everything through; for development and tests whose receivers run on loopback.
	AllowPrivate bool
	// Allow lists networks that are allowed although they are private (an explicit allow-list).
	Allow    []netip.Prefix
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

func classify(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "a link-local address (cloud metadata lives there)"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case netip.MustParsePrefix("100.64.0.0/10").Contains(ip):
		return "a carrier-grade NAT address"
	case ip == netip.MustParseAddr("fd00:ec2::254"):
		return "a cloud metadata address"
	}
	return ""
}

// control runs on every dial, after DNS resolution, so a name that changes its answer is still caught.
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
	for _, a := range addrs {
		if why := g.refuse(a); why != "" {
			return &BlockedError{Addr: host + " (" + a.String() + ")", Reason: why}
		}
	}
	return nil
}
