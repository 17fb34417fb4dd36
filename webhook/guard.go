package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
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
	resolver     *net.Resolver
}

// NewGuard builds a guard.
func NewGuard(allowPrivate bool) *Guard {
	return &Guard{AllowPrivate: allowPrivate, resolver: net.DefaultResolver}
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
	if why := classify(ap.Addr()); why != "" {
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
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return &BlockedError{Addr: host, Reason: "a loopback address"}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := classify(ip); why != "" {
			return &BlockedError{Addr: host, Reason: why}
		}
		return nil
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("url host %q does not resolve: %v", host, err)
	}
	for _, a := range addrs {
		if why := classify(a); why != "" {
			return &BlockedError{Addr: host + " (" + a.String() + ")", Reason: why}
		}
	}
	return nil
}
