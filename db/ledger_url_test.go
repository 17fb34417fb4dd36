package db

import "testing"

// The ledger keeps where an attempt went without what may be a credential: user info, query and
// fragment go; the query leaves a short hash that tells two query strings apart.
func TestLedgerURL(t *testing.T) {
	for _, c := range []struct {
		raw, url string
		hashed   bool
	}{
		{"https://hooks.example.com/in", "https://hooks.example.com/in", false},
		{"https://hooks.example.com/in?token=SECRET", "https://hooks.example.com/in", true},
		{"https://user:pw@hooks.example.com:8443/a/b?x=1#frag", "https://hooks.example.com:8443/a/b", true},
		{"https://hooks.example.com/a%2Fb", "https://hooks.example.com/a%2Fb", false},
		{"http://[::1]:9000", "http://[::1]:9000", false},
		{"not a url", "", false},
		{"", "", false},
	} {
		u, h := LedgerURL(c.raw)
		if u != c.url || (h != "") != c.hashed || (h != "" && len(h) != 16) {
			t.Errorf("LedgerURL(%q) = %q, %q; want %q, hashed %v", c.raw, u, h, c.url, c.hashed)
		}
	}
	_, a := LedgerURL("https://h/p?token=one")
	_, b := LedgerURL("https://h/p?token=two")
	if a == b {
		t.Errorf("two query strings hash alike: %s", a)
	}
}
