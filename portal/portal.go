// Package portal is the subscriber portal (issue 29): server-rendered pages under /portal/ where
// the people who receive webhooks manage their endpoints and debug deliveries in a browser.
//
// A publisher (or the operator) opens a session for its customer with POST
// /v1/apps/{id}/portal-sessions; the single-use link it gets is exchanged here for a session
// cookie. Every request then reads the session from the database (a revocation takes effect at
// once in every API process) and is scoped to the session's app, and to its subscriptions when
// the session is narrowed. Reads go through the repository with db.OwnedBy; every mutation goes
// through the same use cases as the REST API (package usecase) and is written to the audit log.
//
// Security: html/template escapes everything; a strict Content-Security-Policy (default-src
// 'self', no inline script; htmx is served from here, with eval off); a CSRF token, derived from
// the session cookie, on every POST, and cross-site POSTs refused; frame-ancestors from the app's
// allow-list ('none' by default).
package portal

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/usecase"
	"github.com/hookd/hookd/webhook"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the portal is served.
const Prefix = "/portal"

// Deps is what the portal needs.
type Deps struct {
	Repo   *db.Repo
	Config config.Config
	Guard  *webhook.Guard
	Log    *slog.Logger
	// UseCases is what every mutation goes through (the REST API's own use cases).
	UseCases *usecase.Service
	// PollEvery is how often live lists (the message log, a pending delivery, a recover's
	// progress) refresh themselves (default 3 s); PollSlow the endpoints' health (default 10 s).
	PollEvery, PollSlow time.Duration
}

// Handler serves the portal.
type Handler struct {
	Deps
	mux      *http.ServeMux
	pages    map[string]*template.Template
	exchange *limiter // token exchanges per client address
}

// New builds the portal's handler.
func New(d Deps) (*Handler, error) {
	if d.PollEvery <= 0 {
		d.PollEvery = 3 * time.Second
	}
	if d.PollSlow <= 0 {
		d.PollSlow = 10 * time.Second
	}
	h := &Handler{Deps: d, mux: http.NewServeMux(), exchange: newLimiter(exchangeRate, exchangeBurst)}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Prefix+"/static/", http.FileServerFS(static))
	h.mux.Handle("GET "+Prefix+"/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	h.mux.HandleFunc("GET "+Prefix+"/open", h.open)
	h.mux.HandleFunc("GET "+Prefix+"/{$}", h.session(func(w http.ResponseWriter, r *http.Request, s *visit) {
		http.Redirect(w, r, Prefix+"/endpoints", http.StatusSeeOther)
	}))
	h.mux.HandleFunc("GET "+Prefix+"/theme.css", h.session(h.themeCSS))
	h.mux.HandleFunc("POST "+Prefix+"/logout", h.mutation(h.logout))

	h.mux.HandleFunc("GET "+Prefix+"/endpoints", h.session(h.endpoints))
	h.mux.HandleFunc("GET "+Prefix+"/endpoints/new", h.session(h.newEndpoint))
	h.mux.HandleFunc("GET "+Prefix+"/endpoints/{id}", h.session(h.endpoint))
	h.mux.HandleFunc("GET "+Prefix+"/event-types", h.session(h.eventTypes))
	h.mux.HandleFunc("GET "+Prefix+"/deliveries", h.session(h.deliveries))
	h.mux.HandleFunc("GET "+Prefix+"/deliveries/{id}", h.session(h.delivery))
	h.mux.HandleFunc("GET "+Prefix+"/recover", h.session(h.recoverPage))
	h.mux.HandleFunc("GET "+Prefix+"/operations/{id}", h.session(h.operation))
	h.mux.HandleFunc("GET "+Prefix+"/operational", h.session(h.operational))
	h.mux.HandleFunc("GET "+Prefix+"/audit", h.session(h.auditPage))

	h.mux.HandleFunc("POST "+Prefix+"/filter-test", h.session(h.filterTest)) // changes nothing: read-only may use it
	h.mux.HandleFunc("POST "+Prefix+"/endpoints", h.mutation(h.createEndpoint))
	h.mux.HandleFunc("POST "+Prefix+"/endpoints/{id}", h.mutation(h.updateEndpoint))
	h.mux.HandleFunc("POST "+Prefix+"/endpoints/{id}/enable", h.mutation(h.enableEndpoint))
	h.mux.HandleFunc("POST "+Prefix+"/endpoints/{id}/disable", h.mutation(h.disableEndpoint))
	h.mux.HandleFunc("POST "+Prefix+"/endpoints/{id}/delete", h.mutation(h.deleteEndpoint))
	h.mux.HandleFunc("POST "+Prefix+"/endpoints/{id}/rotate-secret", h.mutation(h.rotateSecret))
	h.mux.HandleFunc("POST "+Prefix+"/endpoints/{id}/test", h.mutation(h.testSend))
	h.mux.HandleFunc("POST "+Prefix+"/test-send", h.mutation(h.testSend)) // the catalog's: the endpoint is a field
	h.mux.HandleFunc("POST "+Prefix+"/deliveries/{id}/retry", h.mutation(h.retryDelivery))
	h.mux.HandleFunc("POST "+Prefix+"/deliveries/{id}/replay", h.mutation(h.replayDelivery))
	h.mux.HandleFunc("POST "+Prefix+"/deliveries/{id}/cancel", h.mutation(h.cancelDelivery))
	h.mux.HandleFunc("POST "+Prefix+"/recover", h.mutation(h.recoverFailures))
	h.mux.HandleFunc("POST "+Prefix+"/operational", h.mutation(h.setOperational))
	return h, nil
}

// ServeHTTP serves a portal request with the portal's security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp(nil))
	hd.Set("X-Frame-Options", "DENY") // replaced by frame-ancestors once the session's app is known
	hd.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with a form
	// post, which sameOrigin must refuse. The link's own answer says no-referrer (open).
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// csp is the Content-Security-Policy: only this origin's scripts, styles and requests; images
// also over https (the app's logo); framed only by the app's allow-list.
func csp(frameAncestors []string) string {
	fa := "'none'"
	if len(frameAncestors) > 0 {
		fa = strings.Join(frameAncestors, " ")
	}
	return "default-src 'self'; img-src 'self' https:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors " + fa
}

// visit is one authenticated portal request.
type visit struct {
	Session  db.PortalSession
	App      db.App
	Settings db.PortalSettings
	CSRF     string
}

// session wraps a page that needs a session: without a live one the visitor is told so (401).
func (h *Handler) session(next func(http.ResponseWriter, *http.Request, *visit)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := h.authenticate(w, r)
		if !ok {
			return
		}
		next(w, r, v)
	}
}

// mutation wraps an action that changes something: a session that is not read-only, a valid CSRF
// token, and not a cross-site request.
func (h *Handler) mutation(next func(http.ResponseWriter, *http.Request, *visit)) http.HandlerFunc {
	return h.session(func(w http.ResponseWriter, r *http.Request, v *visit) {
		if !h.sameOrigin(r) || !validCSRF(r, v.CSRF) {
			h.errorPage(w, r, v, http.StatusForbidden, "This form expired or came from another site. Reload the page and try again.")
			return
		}
		if v.Session.ReadOnly && !strings.HasSuffix(r.URL.Path, "/logout") {
			h.errorPage(w, r, v, http.StatusForbidden, "This session is read-only: it cannot change anything.")
			return
		}
		next(w, r, v)
	})
}

// sameOrigin refuses a request the browser says is cross-site, or whose Origin is another.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	if u.Host == r.Host {
		return true
	}
	if pub, err := url.Parse(h.Config.PublicURL); err == nil && h.Config.PublicURL != "" {
		return u.Scheme == pub.Scheme && u.Host == pub.Host
	}
	return false
}

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	V        *visit
	Poll     string // the poll interval of live lists for htmx ("3s")
	PollSlow string // the endpoints' health, which costs more to read ("10s")
	Flash    string
	Error    string
	Data     any
	Prefix   string
	Now      time.Time
	SelfPath string
}

// render writes a page with the layout.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, v *visit, status int, name string, p page) {
	t, ok := h.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	p.V, p.Prefix, p.Now = v, Prefix, time.Now()
	p.Poll, p.PollSlow = fmt.Sprintf("%ds", int(h.PollEvery/time.Second)), fmt.Sprintf("%ds", int(h.PollSlow/time.Second))
	if p.SelfPath == "" {
		// The page's own address without its one-time note: what its live parts poll.
		u := *r.URL
		q := u.Query()
		q.Del("flash")
		u.RawQuery = q.Encode()
		p.SelfPath = u.RequestURI()
	}
	if p.Flash == "" {
		p.Flash = r.URL.Query().Get("flash")
		if len(p.Flash) > 200 {
			p.Flash = ""
		}
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		h.Log.Error("portal: render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// errorPage answers with a message in the layout (or bare, without a session).
func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, v *visit, status int, msg string) {
	h.render(w, r, v, status, "error", page{Title: http.StatusText(status), Error: msg, Data: status})
}

// fail answers an error from the layers below: not found (also another app's ids) is 404, a
// refusal with a message its status, anything else 500, logged.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, v *visit, err error) {
	var ue *UserError
	var uc *usecase.Error
	switch kind := usecase.KindOf(err); {
	case errors.Is(err, db.ErrNotFound) || kind == usecase.NotFound:
		h.errorPage(w, r, v, http.StatusNotFound, "Not found.")
	case errors.As(err, &ue):
		h.errorPage(w, r, v, ue.Status, ue.Message)
	case errors.As(err, &uc) && kind != usecase.Internal && kind != usecase.Unavailable:
		h.errorPage(w, r, v, statusOf(kind), uc.Error())
	case kind == usecase.Unavailable:
		h.errorPage(w, r, v, http.StatusServiceUnavailable, "A dependency is unavailable; try again shortly.")
	default:
		h.Log.Error("portal request failed", "path", r.URL.Path, "error", err)
		h.errorPage(w, r, v, http.StatusInternalServerError, "Something went wrong on our side.")
	}
}

// statusOf is the status of a use case's refusal.
func statusOf(k usecase.Kind) int {
	switch k {
	case usecase.Invalid:
		return http.StatusBadRequest
	case usecase.TooLarge:
		return http.StatusRequestEntityTooLarge
	case usecase.Unprocessable:
		return http.StatusUnprocessableEntity
	case usecase.NotFound:
		return http.StatusNotFound
	case usecase.Forbidden:
		return http.StatusForbidden
	case usecase.Conflict:
		return http.StatusConflict
	case usecase.RateLimited:
		return http.StatusTooManyRequests
	case usecase.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// UserError is a refusal the visitor should read (bad input, a conflict), with its status.
type UserError struct {
	Status  int
	Message string
}

func (e *UserError) Error() string { return e.Message }

// audit records a mutating action. The action is done already: a failure to record it is
// logged, not shown.
func (h *Handler) audit(ctx context.Context, v *visit, action, target, detail string) {
	err := h.Repo.AddPortalAudit(context.WithoutCancel(ctx), db.PortalAudit{AppID: v.App.ID, SessionID: v.Session.ID,
		Action: action, Target: target, Detail: detail})
	if err != nil {
		h.Log.Error("portal audit not recorded", "app_id", v.App.ID, "action", action, "target", target, "error", err)
	}
}

// redirect answers a form with a redirect to a page (POST-redirect-GET), carrying a short note.
func redirect(w http.ResponseWriter, r *http.Request, path, flash string) {
	if flash != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "flash=" + url.QueryEscape(flash)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}
