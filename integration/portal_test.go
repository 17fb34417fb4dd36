package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/hookd/hookd/internal/testenv"
)

// portalLink opens a portal session for app (with key, the app's own or the operator's) and
// returns its single-use link.
func (s *stack) portalLink(key, appID string, body map[string]any) string {
	s.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	d := s.must(s.call("POST", "/v1/apps/"+appID+"/portal-sessions", key, body), http.StatusCreated).Data()
	return d["url"].(string)
}

// portalClient is a browser-like client: a cookie jar, no redirects followed.
type portalClient struct {
	t *testing.T
	c *http.Client
}

func newPortalClient(t *testing.T) *portalClient {
	jar, _ := cookiejar.New(nil)
	return &portalClient{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (p *portalClient) do(method, u string, form url.Values, header http.Header) (*http.Response, string) {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// The portal's sessions over plain HTTP: a link opens once and sets an HttpOnly, SameSite cookie
// on a redirect without the token; pages carry a strict CSP; mutations need the CSRF token and a
// session that is not read-only; another app's ids answer 404; a narrowed session sees only its
// subscriptions; revocation is at once; the audit log records what was done.
func TestPortalSessions(t *testing.T) {
	s := newStack(t)
	a := s.newApp("portal a")
	b := s.newApp("portal b")
	recv := testenv.NewReceiver(testenv.Statuses(200))
	t.Cleanup(recv.Close)
	subA1 := s.subscribe(a.Key, map[string]any{"url": recv.URL + "/a1", "eventTypes": []string{"order.created"}})
	subA2 := s.subscribe(a.Key, map[string]any{"url": recv.URL + "/a2", "eventTypes": []string{"order.created"}})
	subB := s.subscribe(b.Key, map[string]any{"url": recv.URL + "/b", "eventTypes": []string{"order.created"}})

	// Who may open sessions: the app itself and the operator, not another app.
	s.must(s.call("POST", "/v1/apps/"+a.ID+"/portal-sessions", b.Key, map[string]any{}), http.StatusForbidden)
	s.must(s.call("POST", "/v1/apps/"+a.ID+"/portal-sessions", a.Key, map[string]any{"subscriptionIds": []string{subB.ID}}), http.StatusNotFound)
	s.must(s.call("POST", "/v1/apps/"+a.ID+"/portal-sessions", a.Key, map[string]any{"lifetimeSeconds": 5}), http.StatusBadRequest)
	link := s.portalLink(operatorKey, a.ID, nil)
	if !strings.HasPrefix(link, s.URL+"/portal/open?token=hps_") {
		t.Fatalf("link %s", link)
	}

	p := newPortalClient(t)
	resp, _ := p.do("GET", link, nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/portal/endpoints" {
		t.Fatalf("opening the link: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"hookd_portal=", "HttpOnly", "SameSite=Lax", "Path=/portal/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie, want)
		}
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("Referrer-Policy %q", resp.Header.Get("Referrer-Policy"))
	}
	// Single use: the same link again is refused, and does not sign a second browser in.
	other := newPortalClient(t)
	if resp, _ := other.do("GET", link, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the link opened twice: %d", resp.StatusCode)
	}
	resp, html := p.do("GET", s.URL+"/portal/endpoints", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, subA1.ID) || !strings.Contains(html, subA2.ID) || strings.Contains(html, subB.ID) {
		t.Fatalf("endpoints page %d:\n%s", resp.StatusCode, html)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", resp.Header.Get("X-Frame-Options"))
	}
	// Another app's subscription, by URL: 404, as if it did not exist.
	if resp, _ := p.do("GET", s.URL+"/portal/endpoints/"+subB.ID, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("app B's endpoint from app A's session: %d", resp.StatusCode)
	}
	m := csrfField.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", html)
	}
	csrf := m[1]
	// A mutation without the token, or from another site, is refused and changes nothing.
	if resp, _ := p.do("POST", s.URL+"/portal/endpoints/"+subA1.ID+"/disable", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("disable without CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := p.do("POST", s.URL+"/portal/endpoints/"+subA1.ID+"/disable", url.Values{"csrf": {csrf}},
		http.Header{"Origin": {"https://evil.example"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("disable from another origin: %d", resp.StatusCode)
	}
	if got := s.must(s.call("GET", "/v1/subscriptions/"+subA1.ID, a.Key, nil), http.StatusOK).Data(); got["active"] != true {
		t.Fatalf("refused disable disabled: %v", got)
	}
	if resp, _ := p.do("POST", s.URL+"/portal/endpoints/"+subB.ID+"/disable", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("disable app B's endpoint: %d", resp.StatusCode)
	}
	if resp, _ := p.do("POST", s.URL+"/portal/endpoints/"+subA1.ID+"/disable", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	if got := s.must(s.call("GET", "/v1/subscriptions/"+subA1.ID, a.Key, nil), http.StatusOK).Data(); got["active"] != false {
		t.Fatalf("disable in the portal did not disable: %v", got)
	}
	// The audit log, from the API (the app and the operator; not another app) and in the portal.
	audit := s.must(s.call("GET", "/v1/apps/"+a.ID+"/portal-audit", a.Key, nil), http.StatusOK).Data()["entries"].([]any)
	var actions []string
	for _, e := range audit {
		e := e.(map[string]any)
		actions = append(actions, fmt.Sprint(e["action"], " ", e["target"]))
	}
	if len(audit) != 3 || actions[0] != "endpoint.disable "+subA1.ID || !strings.HasPrefix(actions[1], "session.open ps_") ||
		!strings.HasPrefix(actions[2], "session.create ps_") {
		t.Fatalf("audit, newest first: %q", actions)
	}
	// The SSRF guard's reason is shown next to the form.
	resp, html = p.do("POST", s.URL+"/portal/endpoints", url.Values{"csrf": {csrf}, "url": {"ftp://example.com/hooks"}, "eventTypes": {"order.created"}}, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(html, "url: ") || !strings.Contains(html, `aria-invalid="true"`) {
		t.Errorf("an ftp URL: %d\n%s", resp.StatusCode, html)
	}
	s.must(s.call("GET", "/v1/apps/"+a.ID+"/portal-audit", operatorKey, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/apps/"+a.ID+"/portal-audit", b.Key, nil), http.StatusForbidden)
	if _, html := p.do("GET", s.URL+"/portal/audit", nil, nil); !strings.Contains(html, "endpoint.disable") {
		t.Errorf("audit page:\n%s", html)
	}

	// Read-only and narrowed: sees A2 only, no buttons, cannot change it.
	ro := newPortalClient(t)
	ro.do("GET", s.portalLink(a.Key, a.ID, map[string]any{"readOnly": true, "subscriptionIds": []string{subA2.ID}}), nil, nil)
	resp, html = ro.do("GET", s.URL+"/portal/endpoints", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, subA2.ID) || strings.Contains(html, subA1.ID) {
		t.Fatalf("narrowed session's endpoints %d:\n%s", resp.StatusCode, html)
	}
	if resp, _ := ro.do("GET", s.URL+"/portal/endpoints/"+subA1.ID, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("narrowed session reads another endpoint of its app: %d", resp.StatusCode)
	}
	_, html = ro.do("GET", s.URL+"/portal/endpoints/"+subA2.ID, nil, nil)
	if strings.Contains(html, "/disable\"") || strings.Contains(html, "rotate-secret") || !strings.Contains(html, "Read-only") {
		t.Errorf("read-only page offers actions:\n%s", html)
	}
	roCSRF := csrfField.FindStringSubmatch(html)[1]
	if resp, _ := ro.do("POST", s.URL+"/portal/endpoints/"+subA2.ID+"/disable", url.Values{"csrf": {roCSRF}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only disable: %d", resp.StatusCode)
	}
	// Narrowed but not read-only: it may change its endpoint, not add one.
	nw := newPortalClient(t)
	nw.do("GET", s.portalLink(a.Key, a.ID, map[string]any{"subscriptionIds": []string{subA2.ID}}), nil, nil)
	_, html = nw.do("GET", s.URL+"/portal/endpoints/"+subA2.ID, nil, nil)
	nwCSRF := csrfField.FindStringSubmatch(html)[1]
	if resp, _ := nw.do("POST", s.URL+"/portal/endpoints", url.Values{"csrf": {nwCSRF}, "url": {recv.URL + "/new"}, "eventTypes": {"x"}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a narrowed session added an endpoint: %d", resp.StatusCode)
	}
	if resp, _ := nw.do("POST", s.URL+"/portal/endpoints/"+subA1.ID+"/enable", url.Values{"csrf": {nwCSRF}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a narrowed session enabled another endpoint: %d", resp.StatusCode)
	}
	if resp, _ := nw.do("POST", s.URL+"/portal/endpoints/"+subA2.ID, url.Values{"csrf": {nwCSRF}, "url": {recv.URL + "/a2-moved"},
		"eventTypes": {"order.created"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a narrowed session's change to its own endpoint: %d", resp.StatusCode)
	}
	if got := s.must(s.call("GET", "/v1/subscriptions/"+subA2.ID, a.Key, nil), http.StatusOK).Data(); got["url"] != recv.URL+"/a2-moved" {
		t.Errorf("the change did not land: %v", got["url"])
	}

	// The narrowed session's message log and delivery pages: its subscription's deliveries only.
	s.must(s.call("POST", "/v1/events", a.Key, map[string]any{"id": "narrow-1", "type": "order.created", "data": map[string]any{}}), http.StatusCreated)
	var d1, d2 string
	for _, d := range s.waitDeliveries(a.Key, "narrow-1", 1, 30*time.Second) { // A1 is disabled
		d2 = d["id"].(string)
	}
	s.must(s.call("POST", "/v1/subscriptions/"+subA1.ID+"/enable", a.Key, nil), http.StatusOK)
	s.must(s.call("POST", "/v1/events", a.Key, map[string]any{"id": "narrow-2", "type": "order.created", "data": map[string]any{}}), http.StatusCreated)
	for _, d := range s.waitDeliveries(a.Key, "narrow-2", 2, 30*time.Second) {
		if d["subscriptionId"] == subA1.ID {
			d1 = d["id"].(string)
		}
	}
	_, html = ro.do("GET", s.URL+"/portal/deliveries", nil, nil)
	if !strings.Contains(html, d2) || strings.Contains(html, d1) || d1 == "" {
		t.Errorf("narrowed message log (wants %s, not %s):\n%s", d2, d1, html)
	}
	if resp, _ := ro.do("GET", s.URL+"/portal/deliveries/"+d1, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("narrowed session reads another endpoint's delivery: %d", resp.StatusCode)
	}
	if resp, _ := ro.do("GET", s.URL+"/portal/deliveries/"+d2, nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("narrowed session's own delivery: %d", resp.StatusCode)
	}

	// Sessions are listed; revoking one ends it at once.
	list := s.must(s.call("GET", "/v1/apps/"+a.ID+"/portal-sessions", a.Key, nil), http.StatusOK).Data()["sessions"].([]any)
	if len(list) != 3 {
		t.Fatalf("sessions %v", list)
	}
	first := list[2].(map[string]any) // newest first
	if first["state"] != "open" || first["createdBy"] != "operator" {
		t.Errorf("first session %v", first)
	}
	s.must(s.call("DELETE", "/v1/apps/"+a.ID+"/portal-sessions/"+first["id"].(string), b.Key, nil), http.StatusForbidden)
	s.must(s.call("DELETE", "/v1/apps/"+a.ID+"/portal-sessions/"+first["id"].(string), a.Key, nil), http.StatusNoContent)
	if resp, _ := p.do("GET", s.URL+"/portal/endpoints", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked session still in: %d", resp.StatusCode)
	}
	if resp, _ := ro.do("GET", s.URL+"/portal/endpoints", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other session was revoked too: %d", resp.StatusCode)
	}

	// Settings: frame-ancestors from the app's allow-list.
	s.must(s.call("PUT", "/v1/apps/"+a.ID+"/portal-settings", a.Key, map[string]any{"frameAncestors": []string{"javascript:alert(1)"}}), http.StatusBadRequest)
	s.must(s.call("PUT", "/v1/apps/"+a.ID+"/portal-settings", a.Key, map[string]any{"frameAncestors": []string{"https://dash.example.com"},
		"theme": map[string]any{"accentColor": "#aa3300", "mode": "dark"}}), http.StatusOK)
	resp, html = ro.do("GET", s.URL+"/portal/endpoints", nil, nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors https://dash.example.com") ||
		resp.Header.Get("X-Frame-Options") != "" || !strings.Contains(html, `data-mode="dark"`) {
		t.Errorf("framed: CSP %q, XFO %q", csp, resp.Header.Get("X-Frame-Options"))
	}
	if _, css := ro.do("GET", s.URL+"/portal/theme.css", nil, nil); !strings.Contains(css, "#aa3300") {
		t.Errorf("theme.css %q", css)
	}

	// The operations URL, set in the portal (checked by the SSRF guard), receives the app's
	// operational webhooks, which the portal then lists.
	p2 := newPortalClient(t)
	p2.do("GET", s.portalLink(a.Key, a.ID, nil), nil, nil)
	_, html = p2.do("GET", s.URL+"/portal/operational", nil, nil)
	csrf2 := csrfField.FindStringSubmatch(html)[1]
	if resp, html := p2.do("POST", s.URL+"/portal/operational", url.Values{"csrf": {csrf2}, "operationsUrl": {"ftp://x.example"}}, nil); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(html, "operationsUrl: ") {
		t.Errorf("an ftp operations URL: %d\n%s", resp.StatusCode, html)
	}
	if resp, _ := p2.do("POST", s.URL+"/portal/operational", url.Values{"csrf": {csrf2}, "operationsUrl": {recv.URL + "/ops"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("setting the operations URL: %d", resp.StatusCode)
	}
	if resp, _ := p2.do("POST", s.URL+"/portal/endpoints/"+subA2.ID+"/disable", url.Values{"csrf": {csrf2}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	eventually(t, 30*time.Second, "the operational webhook in the portal", func() bool {
		_, html := p2.do("GET", s.URL+"/portal/operational", nil, nil)
		return strings.Contains(html, "subscription.disabled") && strings.Contains(html, ">succeeded<")
	})

	// A link past its 10 minutes does not open; a session past its lifetime is out; neither
	// secret is stored as such.
	late := s.must(s.call("POST", "/v1/apps/"+a.ID+"/portal-sessions", a.Key, map[string]any{}), http.StatusCreated).Data()
	if _, err := database.DB.Exec(`UPDATE portal_sessions SET token_expires_at = now() - interval '1 second' WHERE id = $1`, late["id"]); err != nil {
		t.Fatal(err)
	}
	if resp, _ := newPortalClient(t).do("GET", late["url"].(string), nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a link past its deadline: %d", resp.StatusCode)
	}
	if _, err := database.DB.Exec(`UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE app_id = $1 AND read_only`, a.ID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := ro.do("GET", s.URL+"/portal/endpoints", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session past its lifetime: %d", resp.StatusCode)
	}
	token := strings.TrimPrefix(late["url"].(string), s.URL+"/portal/open?token=")
	var plain int
	if err := database.DB.Get(&plain, `SELECT count(*) FROM portal_sessions WHERE position($1::bytea in coalesce(token_hash, '')) > 0
		OR id = $2`, []byte(token), token); err != nil || plain != 0 {
		t.Errorf("the token is stored as such (%d rows, %v)", plain, err)
	}

	// Rotating a secret shows the new one once; deleting an endpoint deletes it.
	resp, html = p2.do("POST", s.URL+"/portal/endpoints/"+subA1.ID+"/rotate-secret", url.Values{"csrf": {csrf2}}, nil)
	if m := regexp.MustCompile(`id="secret">(whsec_[^<]+)<`).FindStringSubmatch(html); resp.StatusCode != http.StatusOK || m == nil || m[1] == subA1.Secret ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("rotation: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if _, html := p2.do("GET", s.URL+"/portal/endpoints/"+subA1.ID, nil, nil); strings.Contains(html, "whsec_") {
		t.Error("the secret is shown again")
	}
	if resp, _ := p2.do("POST", s.URL+"/portal/endpoints/"+subA1.ID+"/delete", url.Values{"csrf": {csrf2}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	s.must(s.call("GET", "/v1/subscriptions/"+subA1.ID, a.Key, nil), http.StatusNotFound)

	// Another API process on the same database knows the session, and a revocation made through
	// it ends the session in this one at once.
	other2 := startStack(t, false)
	p3 := newPortalClient(t)
	p3.do("GET", s.portalLink(a.Key, a.ID, nil), nil, nil)
	u1, _ := url.Parse(s.URL + "/portal/")
	cookies := p3.c.Jar.Cookies(u1)
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	u2, _ := url.Parse(other2.URL + "/portal/")
	p3.c.Jar.SetCookies(u2, cookies)
	if resp, _ := p3.do("GET", other2.URL+"/portal/endpoints", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other API process: %d", resp.StatusCode)
	}
	other2.must(other2.call("DELETE", "/v1/apps/"+a.ID+"/portal-sessions", a.Key, nil), http.StatusOK)
	if resp, _ := p3.do("GET", s.URL+"/portal/endpoints", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked through another API process, still in: %d", resp.StatusCode)
	}

	// The exchange is rate limited per client address.
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		resp, _ := newPortalClient(t).do("GET", s.URL+"/portal/open?token=hps_nope", nil, nil)
		limited = resp.StatusCode == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("30 exchanges from one address were not rate limited")
	}
}

// chromium finds Debian's Chromium (or another Chrome), or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium: the portal's browser tests need it (apt-get install chromium; .ci/run installs it)")
	return ""
}

// browser starts a headless Chromium for the test; dialogs (alert, confirm) are recorded in
// dialogs and dismissed.
func browser(t *testing.T, timeout time.Duration) (context.Context, *dialogLog) {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 900))
	actx, stop := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(stop)
	bctx, stop := chromedp.NewContext(actx)
	t.Cleanup(stop)
	dialogs := &dialogLog{}
	chromedp.ListenTarget(bctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.add(d.Message)
			go func() { _ = chromedp.Run(bctx, page.HandleJavaScriptDialog(false)) }()
		}
	})
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(cancel)
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		t.Fatal(err)
	}
	return ctx, dialogs
}

// dialogLog records the JavaScript dialogs (alert, confirm, prompt) a page opened.
type dialogLog struct {
	mu   sync.Mutex
	msgs []string
}

func (d *dialogLog) add(m string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.msgs = append(d.msgs, m)
}

func (d *dialogLog) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.msgs...)
}

// screenshotDir is where page screenshots go: docs/ with HOOKD_SCREENSHOTS=1, else a temporary
// directory.
func screenshotDir(t *testing.T) string {
	if os.Getenv("HOOKD_SCREENSHOTS") != "" {
		return filepath.Join("..", "docs")
	}
	return t.TempDir()
}

// axeScript is axe-core, injected into each page the browser test checks.
func axeScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ui drives the portal in the browser.
type ui struct {
	t       *testing.T
	ctx     context.Context
	axe     string
	shots   string
	dialogs *dialogLog
}

// run runs browser actions or fails the test.
func (u *ui) run(actions ...chromedp.Action) {
	u.t.Helper()
	if err := chromedp.Run(u.ctx, actions...); err != nil {
		u.t.Fatal(err)
	}
}

// text is the page's visible text.
func (u *ui) text() string {
	u.t.Helper()
	var s string
	// Only a page parsed to its end: a page arrives in several writes.
	u.run(chromedp.Evaluate(`document.readyState === "complete" && document.body ? document.body.innerText : ""`, &s))
	return s
}

// waitText waits until the page's text holds want.
// slack stretches the waits: they state how long a page takes on a quiet machine, and a loaded
// one (the race detector, other test binaries on 2 cores) takes longer; a page that never comes
// still fails.
const slack = 3

func (u *ui) waitText(want string, timeout time.Duration) string {
	u.t.Helper()
	var s string
	for end := time.Now().Add(slack * timeout); ; {
		if s = u.text(); strings.Contains(s, want) {
			return s
		}
		if time.Now().After(end) {
			u.t.Fatalf("the page never showed %q:\n%s", want, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitTrue waits until a JavaScript expression is true on the page.
func (u *ui) waitTrue(expr string, timeout time.Duration) {
	u.t.Helper()
	for end := time.Now().Add(slack * timeout); ; time.Sleep(200 * time.Millisecond) {
		var ok bool
		u.run(chromedp.Evaluate(expr, &ok))
		if ok {
			return
		}
		if time.Now().After(end) {
			u.t.Fatalf("never true on the page: %s\n%s", expr, u.text())
		}
	}
}

// check runs axe-core on the page (no serious or critical violation), saves a screenshot as
// docs/portal-<name>.png (or a temporary file) and checks that no dialog ever opened.
func (u *ui) check(name string) {
	u.t.Helper()
	var violations []string
	u.run(chromedp.Evaluate(u.axe, nil), chromedp.Evaluate(`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => v.impact + " " + v.id + ": " + v.help + " — " + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", ")))`,
		&violations, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if len(violations) > 0 {
		u.t.Errorf("axe-core on the %s page:\n%s", name, strings.Join(violations, "\n"))
	}
	var shot []byte
	u.run(chromedp.FullScreenshot(&shot, 100))
	file := filepath.Join(u.shots, "portal-"+name+".png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		u.t.Fatal(err)
	}
	if d := u.dialogs.all(); len(d) > 0 {
		u.t.Fatalf("a dialog opened (script ran): %q", d)
	}
}

// status fetches a portal URL from the page (with its cookie) and returns the HTTP status.
func (u *ui) status(path string) int {
	u.t.Helper()
	var code int
	u.run(chromedp.Evaluate(`fetch(`+jsString(path)+`, {redirect: "manual"}).then(r => r.status)`, &code,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	return code
}

// post submits a form post from the page, with the page's CSRF token, and returns the status.
func (u *ui) post(path string) int {
	u.t.Helper()
	var code int
	u.run(chromedp.Evaluate(`fetch(`+jsString(path)+`, {method: "POST", redirect: "manual", headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: "csrf=" + encodeURIComponent(document.querySelector("input[name=csrf]").value)}).then(r => r.status)`, &code,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	return code
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

const xssBody = `<img src=x onerror=alert(1)>`

// The subscriber portal in a headless Chromium: a magic link signs in; an endpoint is added in
// the browser; an event published through the API appears in the message log without a reload;
// its delivery page shows the payload and the receiver's answer as text (an XSS probe in both
// runs nothing); a replay reaches the receiver with the same webhook-id; a read-only session
// offers no action and is refused one; app A's session cannot reach app B's endpoint or delivery
// by URL; a revoked session is out at once. axe-core finds no serious or critical violation on
// any page. HOOKD_SCREENSHOTS=1 writes the screenshots to docs/portal-*.png.
func TestPortalInBrowser(t *testing.T) {
	ctx, dialogs := browser(t, 110*time.Second)
	s := newStack(t)
	a := s.newApp("Acme Shipping")
	b := s.newApp("portal other")
	recv := testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		return 200, http.Header{"Content-Type": {"text/html"}, "X-Probe": {xssBody}}, xssBody
	})
	t.Cleanup(recv.Close)
	// app A publishes order.created (with a schema and an example) and subscribes to it itself;
	// app B has an endpoint and a delivery of its own.
	s.must(s.call("POST", "/v1/topics/participant/events", a.Key, map[string]any{"events": []any{map[string]any{
		"name": "order.created", "eventType": "order.created", "description": "An order was placed <b>now</b>",
		"schema":   map[string]any{"type": "object", "required": []string{"orderId"}, "properties": map[string]any{"orderId": map[string]any{"type": "string"}}},
		"examples": []any{map[string]any{"orderId": "o-1", "note": "<script>alert(2)</script>"}}}}}), http.StatusCreated)
	subB := s.subscribe(b.Key, map[string]any{"url": recv.URL + "/b", "eventTypes": []string{"b.thing"}})
	s.must(s.call("POST", "/v1/events", b.Key, map[string]any{"id": "b-1", "type": "b.thing", "data": map[string]any{}}), http.StatusCreated)
	dB := s.waitDeliveries(b.Key, "b-1", 1, 30*time.Second)[0]["id"].(string)

	u := &ui{t: t, ctx: ctx, axe: axeScript(t), shots: screenshotDir(t), dialogs: dialogs}
	base := s.URL + "/portal"

	// Sign in with the link: it lands on the endpoints page, and the address holds no token.
	u.run(chromedp.Navigate(s.portalLink(a.Key, a.ID, nil)))
	u.waitText("No endpoints yet", 10*time.Second)
	var loc string
	u.run(chromedp.Location(&loc))
	if loc != base+"/endpoints" {
		t.Fatalf("after the link: %s", loc)
	}
	u.check("endpoints-empty")

	// Add an endpoint in the browser.
	u.run(chromedp.Click("#add-endpoint", chromedp.ByQuery))
	u.waitText("Signing and callbacks", 10*time.Second)
	u.check("endpoint-new")
	u.run(chromedp.SendKeys("#url", recv.URL+"/hooks", chromedp.ByQuery), chromedp.SendKeys("#eventTypes", "order.created", chromedp.ByQuery),
		chromedp.SendKeys("#maxAttempts", "3", chromedp.ByQuery), chromedp.Click("#save", chromedp.ByQuery))
	created := u.waitText("Signing secret (shown once)", 10*time.Second)
	var secret, shownURL string
	u.run(chromedp.Text("#secret", &secret, chromedp.ByQuery), chromedp.Value("#url", &shownURL, chromedp.ByQuery))
	if !strings.HasPrefix(secret, "whsec_") || shownURL != recv.URL+"/hooks" {
		t.Fatalf("after adding the endpoint:\n%s", created)
	}
	subs := s.must(s.call("GET", "/v1/subscriptions", a.Key, nil), http.StatusOK).Data()["subscriptions"].([]any)
	if len(subs) != 1 {
		t.Fatalf("subscriptions %v", subs)
	}
	subID := subs[0].(map[string]any)["id"].(string)

	// The message log, open while an event is published through the API: the delivery appears
	// without a reload (the marker set on the page survives).
	u.run(chromedp.Navigate(base + "/deliveries"))
	u.waitText("No deliveries", 10*time.Second)
	u.run(chromedp.Evaluate(`window.hookdMarker = "still here"`, nil))
	s.must(s.call("POST", "/v1/events", a.Key, map[string]any{"id": "order-1001", "type": "order.created",
		"data": map[string]any{"orderId": "1001", "note": "<script>alert(3)</script>"}}), http.StatusCreated)
	u.waitTrue(`document.querySelectorAll(".delivery-row .s-succeeded").length === 1`, 20*time.Second)
	var marker string
	u.run(chromedp.Evaluate(`window.hookdMarker || ""`, &marker))
	if marker != "still here" {
		t.Fatal("the message log reloaded the page instead of updating it")
	}
	u.check("deliveries")

	// The delivery's page: the payload and the receiver's answer are text; nothing ran.
	u.run(chromedp.Click(`.delivery-row a`, chromedp.ByQuery))
	page := u.waitText("Timeline", 10*time.Second)
	for _, want := range []string{"<script>alert(3)</script>", xssBody, "Attempt 1", "HTTP 200", "Delivered."} {
		if !strings.Contains(page, want) {
			t.Errorf("the delivery page does not show %q:\n%s", want, page)
		}
	}
	var injected int
	u.run(chromedp.Evaluate(`document.querySelectorAll("img[src=x], main script").length`, &injected))
	if injected != 0 {
		t.Fatalf("the probe became %d elements", injected)
	}
	u.run(chromedp.Location(&loc))
	deliveryID := loc[strings.LastIndex(loc, "/")+1:]
	u.check("delivery")

	// Replay: a new delivery, the receiver gets a second POST with the same webhook-id.
	u.run(chromedp.Click("#replay", chromedp.ByQuery))
	u.waitText("this is the new delivery", 10*time.Second)
	eventually(t, 20*time.Second, "the replay's POST", func() bool { return recv.Count() >= 3 }) // B's, the original, the replay
	var ids []string
	for _, r := range recv.Requests() {
		if r.Path == "/hooks" {
			ids = append(ids, r.Header.Get("webhook-id"))
		}
	}
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("the receiver got webhook-ids %q, want the same one twice", ids)
	}
	u.waitText("Delivered.", 20*time.Second)

	// The endpoint's page: health, the filter tester (htmx, inline), a test send (inline).
	u.run(chromedp.Navigate(base + "/endpoints/" + subID))
	u.waitText("Last 24 hours: 2 attempts, 2 succeeded", 10*time.Second)
	u.run(chromedp.SetValue("#filterLogic", `{"==": [{"var": "event.orderId"}, "o-1"]}`, chromedp.ByQuery),
		chromedp.Click(`#filter-h ~ form button`, chromedp.ByQuery))
	u.waitText("The filter matches this example", 10*time.Second)
	// …and against a past event sent to the endpoint (order 1001: not o-1).
	u.run(chromedp.Evaluate(`document.querySelector("#pastDelivery").selectedIndex = 1`, nil),
		chromedp.Click(`#filter-h ~ form button`, chromedp.ByQuery))
	u.waitText("The filter does not match this example", 10*time.Second)
	u.run(chromedp.Click(`#test-h ~ form button`, chromedp.ByQuery))
	u.waitText("Test sent", 10*time.Second)
	u.check("endpoint")

	// The endpoints list with its health (a second endpoint that fails, added through the API),
	// the catalog, the recover page and its progress, the operational webhooks and the audit log.
	down := testenv.NewReceiver(testenv.Statuses(500))
	t.Cleanup(down.Close)
	s.subscribe(a.Key, map[string]any{"url": down.URL + "/down", "eventTypes": []string{"order.created"},
		"retryPolicy": map[string]any{"maxAttempts": 1}})
	s.must(s.call("POST", "/v1/events", a.Key, map[string]any{"id": "order-1002", "type": "order.created",
		"data": map[string]any{"orderId": "1002"}}), http.StatusCreated)
	s.waitDeliveries(a.Key, "order-1002", 2, 30*time.Second)
	u.run(chromedp.Navigate(base + "/endpoints"))
	if list := u.waitText("HTTP 500", 10*time.Second); !strings.Contains(list, "\t100.0% (") || !strings.Contains(list, "\t0.0% (") {
		t.Errorf("the endpoints' health:\n%s", list)
	}
	u.check("endpoints")
	u.run(chromedp.Navigate(base + "/deliveries?status=failed"))
	log := u.waitText("Newest first", 10*time.Second)
	var failed, other int
	u.run(chromedp.Evaluate(`document.querySelectorAll(".delivery-row .s-failed").length`, &failed),
		chromedp.Evaluate(`document.querySelectorAll(".delivery-row").length - document.querySelectorAll(".delivery-row .s-failed").length`, &other))
	if failed != 1 || other != 0 || !strings.Contains(log, "HTTP 500") {
		t.Errorf("the message log filtered on failures (%d failed, %d other):\n%s", failed, other, log)
	}
	u.run(chromedp.Navigate(base + "/event-types"))
	if cat := u.waitText("order.created", 10*time.Second); !strings.Contains(cat, "<script>alert(2)</script>") || !strings.Contains(cat, "<b>now</b>") {
		t.Errorf("the catalog does not show its example and description as text:\n%s", cat)
	}
	// The catalog lists every publisher's events this app may subscribe to, other tests' too: send
	// the test from order.created's own section.
	u.run(chromedp.Click(`//section[contains(@class,"event-type")][.//h2/code[text()="order.created"]]//form[contains(@class,"test-send")]//button`, chromedp.BySearch))
	u.waitText("Test sent", 10*time.Second)
	u.check("event-types")
	u.run(chromedp.Navigate(base + "/recover"))
	u.waitText("Since (UTC)", 10*time.Second)
	u.check("recover")
	u.run(chromedp.Click("#recover", chromedp.ByQuery))
	u.waitText("failures replayed so far", 10*time.Second)
	u.check("recover-progress")
	u.run(chromedp.Navigate(base + "/operational"))
	u.waitText("Operations URL", 10*time.Second)
	u.check("operational")
	u.run(chromedp.Navigate(base + "/audit"))
	audit := u.waitText("delivery.replay", 10*time.Second)
	for _, want := range []string{"endpoint.create", "endpoint.test", "deliveries.recover"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %s:\n%s", want, audit)
		}
	}
	u.check("audit")

	// App A's session, by URL tampering, cannot reach app B's endpoint or delivery.
	for _, path := range []string{"/endpoints/" + subB.ID, "/deliveries/" + dB} {
		if code := u.status(base + path); code != http.StatusNotFound {
			t.Errorf("%s from app A's session: %d", path, code)
		}
		if code := u.post(base + path + "/replay"); path[1] == 'd' && code != http.StatusNotFound {
			t.Errorf("replay of app B's delivery from app A's session: %d", code)
		}
	}

	// A read-only session (in the app's dark theme): no actions offered, and a post is refused.
	s.must(s.call("PUT", "/v1/apps/"+a.ID+"/portal-settings", a.Key, map[string]any{"theme": map[string]any{"accentColor": "#0f766e", "mode": "dark"}}), http.StatusOK)
	u.run(chromedp.Navigate(s.portalLink(operatorKey, a.ID, map[string]any{"readOnly": true})))
	u.waitText("Read-only", 10*time.Second)
	u.run(chromedp.Navigate(base + "/deliveries/" + deliveryID))
	u.waitText("Timeline", 10*time.Second)
	var buttons int
	u.run(chromedp.Evaluate(`document.querySelectorAll("main button").length`, &buttons))
	if buttons != 0 {
		t.Errorf("a read-only session's delivery page has %d buttons", buttons)
	}
	if code := u.post(base + "/deliveries/" + deliveryID + "/replay"); code != http.StatusForbidden {
		t.Errorf("replay from a read-only session: %d", code)
	}
	u.run(chromedp.Navigate(base + "/endpoints"))
	u.waitText("Read-only", 10*time.Second)
	u.check("read-only")

	// Revoked: out at once; the open message log notices at its next update, without a reload.
	u.run(chromedp.Navigate(base + "/deliveries"))
	u.waitText("Newest first", 10*time.Second)
	s.must(s.call("DELETE", "/v1/apps/"+a.ID+"/portal-sessions", a.Key, nil), http.StatusOK)
	u.waitText("Your session has ended or was revoked", 10*time.Second)
	u.check("signed-out")
	if d := dialogs.all(); len(d) > 0 {
		t.Fatalf("a dialog opened: %q", d)
	}
}
