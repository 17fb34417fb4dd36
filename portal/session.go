package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/lib/pq"
	"golang.org/x/time/rate"

	"github.com/hookd/hookd/db"
)

const (
	// CookieName is the session cookie, scoped to the portal's path.
	CookieName = "hookd_portal"
	// LinkTTL is how long a session's link may be opened.
	LinkTTL = 10 * time.Minute
	// DefaultLifetime and MaxLifetime bound a session from its opening.
	DefaultLifetime = 7 * 24 * time.Hour
	MaxLifetime     = 30 * 24 * time.Hour
	// MaxSubscriptionIDs bounds a narrowed session's list.
	MaxSubscriptionIDs = 100
	tokenPrefix        = "hps_"
	// exchangeRate and exchangeBurst bound token exchanges per client address (a token is 256
	// random bits: this protects the database from a flood, not the tokens from guessing).
	exchangeRate  = rate.Limit(10.0 / 60)
	exchangeBurst = 20
)

// SessionRequest is what a new session may be: read-only, narrowed to some of the app's
// subscriptions (nil: all), and how long it lives once opened (0: DefaultLifetime).
type SessionRequest struct {
	AppID           string
	ReadOnly        bool
	SubscriptionIDs []string
	Lifetime        time.Duration
	CreatedBy       string
}

// CreateSession stores a new session and returns it with its single-use token. A subscription
// id the app does not own is refused (*UserError 404).
func CreateSession(ctx context.Context, repo *db.Repo, req SessionRequest) (db.PortalSession, string, error) {
	if req.Lifetime == 0 {
		req.Lifetime = DefaultLifetime
	}
	if req.Lifetime < time.Minute || req.Lifetime > MaxLifetime {
		return db.PortalSession{}, "", &UserError{Status: http.StatusBadRequest,
			Message: fmt.Sprintf("lifetimeSeconds: from 60 to %d", int(MaxLifetime/time.Second))}
	}
	if req.SubscriptionIDs != nil {
		if len(req.SubscriptionIDs) == 0 || len(req.SubscriptionIDs) > MaxSubscriptionIDs {
			return db.PortalSession{}, "", &UserError{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("subscriptionIds: 1 to %d ids (leave it out for every subscription)", MaxSubscriptionIDs)}
		}
		seen := map[string]bool{}
		ids := make([]string, 0, len(req.SubscriptionIDs))
		for i, id := range req.SubscriptionIDs {
			if len(id) > 200 {
				return db.PortalSession{}, "", &UserError{Status: http.StatusBadRequest, Message: fmt.Sprintf("subscriptionIds[%d]: too long", i)}
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			if _, err := repo.GetSubscription(ctx, db.OwnedBy(req.AppID), id); errors.Is(err, db.ErrNotFound) {
				return db.PortalSession{}, "", &UserError{Status: http.StatusNotFound,
					Message: fmt.Sprintf("subscriptionIds[%d]: no subscription %q of this app", i, id)}
			} else if err != nil {
				return db.PortalSession{}, "", err
			}
			ids = append(ids, id)
		}
		req.SubscriptionIDs = ids
	}
	token := tokenPrefix + randomString()
	s := db.PortalSession{ID: "ps_" + randomString()[:22], AppID: req.AppID, ReadOnly: req.ReadOnly,
		LifetimeS: int(req.Lifetime / time.Second), TokenExpiresAt: time.Now().Add(LinkTTL), CreatedBy: req.CreatedBy}
	if req.SubscriptionIDs != nil {
		s.SubscriptionIDs = pq.StringArray(req.SubscriptionIDs)
	}
	stored, err := repo.CreatePortalSession(ctx, s, hash(token))
	if errors.Is(err, db.ErrTooManySessions) {
		return db.PortalSession{}, "", &UserError{Status: http.StatusConflict,
			Message: fmt.Sprintf("this app has %d live portal sessions, the most it may have: revoke some first", db.MaxPortalSessions)}
	}
	return stored, token, err
}

// LinkURL is the URL that opens a session: base is the portal's public origin.
func LinkURL(base, token string) string {
	return strings.TrimRight(base, "/") + Prefix + "/open?token=" + url.QueryEscape(token)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// csrfToken is the session's CSRF token: a MAC of the cookie under a fixed label, so it needs no
// storage and only a page served to the cookie's holder can carry it.
func csrfToken(cookie string) string {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte("hookd portal csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF checks the token of a POST: the X-CSRF-Token header (htmx) or the csrf form field.
func validCSRF(r *http.Request, want string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// open exchanges a link's token for a session cookie and redirects to the portal without it.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer") // the token must never leave in a Referer
	if !h.exchange.allow(clientAddr(r)) {
		w.Header().Set("Retry-After", "60")
		h.errorPage(w, r, nil, http.StatusTooManyRequests, "Too many sign-in attempts from your address. Wait a minute and try again.")
		return
	}
	token := r.URL.Query().Get("token")
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 100 {
		h.errorPage(w, r, nil, http.StatusUnauthorized, "This link is not valid. Ask for a new one.")
		return
	}
	cookie := randomString()
	s, err := h.Repo.OpenPortalSession(r.Context(), hash(token), hash(cookie))
	if errors.Is(err, db.ErrNotFound) {
		h.errorPage(w, r, nil, http.StatusUnauthorized, "This link has expired or was used already. Ask for a new one.")
		return
	}
	if err != nil {
		h.fail(w, r, nil, err)
		return
	}
	if err := h.Repo.AddPortalAudit(r.Context(), db.PortalAudit{AppID: s.AppID, SessionID: s.ID, Action: "session.open", Target: s.ID}); err != nil {
		h.Log.Error("portal audit not recorded", "app_id", s.AppID, "action", "session.open", "error", err)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: cookie, Path: Prefix + "/", Expires: s.ExpiresAt,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, Prefix+"/endpoints", http.StatusSeeOther)
}

// secure says whether cookies get Secure: behind TLS, or when the public URL is https.
func (h *Handler) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(h.Config.PublicURL, "https://")
}

// authenticate finds the request's live session, asking the database every time, or answers 401.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*visit, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		w.Header().Set("HX-Refresh", "true")
		h.errorPage(w, r, nil, http.StatusUnauthorized, "You are not signed in. Open the link you were given (links work once, for 10 minutes).")
		return nil, false
	}
	s, app, err := h.Repo.PortalSessionByCookie(r.Context(), hash(c.Value))
	if errors.Is(err, db.ErrNotFound) {
		if r.Header.Get("HX-Request") == "true" {
			// A live part of a page polling: have htmx reload the page, which then says why.
			w.Header().Set("HX-Refresh", "true")
			h.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended or was revoked.")
			return nil, false
		}
		http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix + "/", MaxAge: -1, HttpOnly: true,
			Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
		h.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended or was revoked. Ask for a new link.")
		return nil, false
	}
	if err != nil {
		h.fail(w, r, nil, err)
		return nil, false
	}
	settings, err := h.Repo.GetPortalSettings(r.Context(), app.ID)
	if err != nil {
		h.fail(w, r, nil, err)
		return nil, false
	}
	if len(settings.FrameAncestors) > 0 {
		w.Header().Del("X-Frame-Options")
		w.Header().Set("Content-Security-Policy", csp(settings.FrameAncestors))
	}
	return &visit{Session: s, App: app, Settings: settings, CSRF: csrfToken(c.Value)}, true
}

// logout ends the session (revoking it, so the cookie is worthless even if kept).
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, v *visit) {
	if _, err := h.Repo.RevokePortalSessions(r.Context(), v.App.ID, v.Session.ID); err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "session.signout", v.Session.ID, "")
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix + "/", MaxAge: -1, HttpOnly: true,
		Secure: h.secure(r), SameSite: http.SameSiteLaxMode})
	h.errorPage(w, r, nil, http.StatusOK, "You are signed out.")
}

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// themeCSS is the app's accent colour as a stylesheet (no inline styles under the CSP).
func (h *Handler) themeCSS(w http.ResponseWriter, r *http.Request, v *visit) {
	accent := "#2563eb"
	if hexColor.MatchString(v.Settings.AccentColor) {
		accent = v.Settings.AccentColor
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=3600") // its address changes with the settings (layout.html)
	fmt.Fprintf(w, ":root { --accent: %s; --accent-fg: %s; }\n", accent, textOn(accent))
}

// textOn picks black or white text for a #rrggbb background, whichever contrasts more (WCAG
// relative luminance), so any accent colour keeps its buttons readable.
func textOn(bg string) string {
	lin := func(h string) float64 {
		var v int
		fmt.Sscanf(h, "%02x", &v)
		c := float64(v) / 255
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(bg[1:3]) + 0.7152*lin(bg[3:5]) + 0.0722*lin(bg[5:7])
	if (l+0.05)/0.05 > 1.05/(l+0.05) { // contrast with black > with white
		return "#000000"
	}
	return "#ffffff"
}

// ValidSettings checks an app's portal settings: frame ancestors are https origins (or
// http://localhost ones for development), at most 20; the accent a #rrggbb colour; the logo an
// https URL; the mode light or dark.
func ValidSettings(s db.PortalSettings) error {
	if len(s.FrameAncestors) > 20 {
		return errors.New("frameAncestors: at most 20 origins")
	}
	for i, o := range s.FrameAncestors {
		u, err := url.Parse(o)
		ok := err == nil && u.Host != "" && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil &&
			(u.Scheme == "https" || (u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"))) &&
			!strings.ContainsAny(o, " ;,'\"") && len(o) <= 200
		if !ok {
			return fmt.Errorf("frameAncestors[%d]: an origin such as https://dashboard.example.com (https, no path)", i)
		}
	}
	if s.AccentColor != "" && !hexColor.MatchString(s.AccentColor) {
		return errors.New("theme.accentColor: a colour such as #2563eb")
	}
	if s.LogoURL != "" {
		u, err := url.Parse(s.LogoURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || len(s.LogoURL) > 1000 {
			return errors.New("theme.logoUrl: an https URL")
		}
	}
	if s.Mode != "light" && s.Mode != "dark" {
		return errors.New(`theme.mode: "light" or "dark"`)
	}
	return nil
}

// clientAddr is what token exchanges are counted by: the peer address, an IPv6 one as its /64.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// limiter is a token bucket per key, for at most 10,000 keys idle at most an hour.
type limiter struct {
	mu      sync.Mutex
	buckets *expirable.LRU[string, *rate.Limiter]
	every   rate.Limit
	burst   int
}

func newLimiter(every rate.Limit, burst int) *limiter {
	return &limiter{buckets: expirable.NewLRU[string, *rate.Limiter](10_000, nil, time.Hour), every: every, burst: burst}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets.Add(key, b)
	}
	l.mu.Unlock()
	return b.Allow()
}
