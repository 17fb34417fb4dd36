package delivery

import (
	"fmt"
	"net/url"
)

// HostOf is a URL's host, or "" if it has none: what summaries and logs name a receiver by (never
// its path or query, which may hold a token). Workflows call it for their summaries: it is
// deterministic (workflowcheck sees url.Parse reach netip's interning, unique.Make).
//
//workflowcheck:ignore
func HostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// CallbackSummary is what the Web UI shows of a one-off callback's workflow.
func CallbackSummary(eventType, url string) string {
	return CallbackHostSummary(eventType, HostOf(url))
}

// CallbackHostSummary is CallbackSummary from the URL's host.
func CallbackHostSummary(eventType, host string) string {
	return fmt.Sprintf("%s callback to %s", eventType, host)
}
