// Package api is hookd's REST API (gin). Handlers validate input, call the repository and start or
// signal workflows; every error is an application/problem+json document.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lib/pq"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookd/hookd/background"
	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/metrics"
	"github.com/hookd/hookd/tracing"
	"github.com/hookd/hookd/usecase"
	"github.com/hookd/hookd/webhook"
)

// Server is the REST API: it parses requests, authorises them (see the route table in Handler),
// calls one use case (package usecase) and renders its result or refusal.
type Server struct {
	Repo    *db.Repo
	Engine  engine.Client // the Temporal client; every call goes through an engine.Gateway
	Config  config.Config
	Guard   *webhook.Guard
	Log     *slog.Logger
	Metrics *metrics.Metrics // nil: no /metrics
	// Tracer gets a span per request (nil or no-op: tracing off); a publish's span is stored with
	// its event and continues in the event's workflow.
	Tracer trace.TracerProvider
	// HistoryRetention is how long the Temporal namespace keeps closed workflows (0: unknown):
	// links to older histories are replaced by a note saying they are gone.
	HistoryRetention time.Duration
	// Outbox starts stored events' workflows in the background (nil: a publish starts its
	// workflow before answering). Set before serving.
	Outbox *background.Outbox

	once      sync.Once
	uc        *usecase.Service // the use cases, made from the fields above on first use
	keys      keyCache
	schemas   schemaCache // compiled schemas of registered events (catalog.go)
	apiLimits apiRateLimiter
	portal    portalState // the subscriber portal's pages (portal.go)
}

// UseCases is the use-case layer this server calls: another front door (the subscriber portal)
// calls the same one, sharing its gateway to Temporal and its dispatch of stored events.
func (s *Server) UseCases() *usecase.Service { return s.cases() }

func (s *Server) cases() *usecase.Service {
	s.once.Do(func() {
		s.uc = &usecase.Service{Repo: s.Repo, Engine: engine.New(s.Engine, s.Config), Config: s.Config, Guard: s.Guard,
			Log: s.Log, Metrics: s.Metrics, Dispatch: s.dispatch}
	})
	return s.uc
}

// gateway is the one gateway to Temporal (package engine).
func (s *Server) gateway() *engine.Gateway { return s.cases().Engine }

// Handler builds the gin router.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if !tracing.Off(s.Tracer) {
		r.Use(otelgin.Middleware("hookd", otelgin.WithTracerProvider(s.Tracer), otelgin.WithPropagators(tracing.Propagator()),
			otelgin.WithGinFilter(func(c *gin.Context) bool { return strings.HasPrefix(c.FullPath(), "/v1/") })))
	}
	r.Use(s.recoverPanics, s.logRequests, s.limitBody)
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		problem(c, http.StatusMethodNotAllowed, c.Request.Method+" is not supported on "+c.Request.URL.Path)
	})
	r.NoRoute(func(c *gin.Context) {
		problem(c, http.StatusNotFound, "no such endpoint: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	if s.Metrics != nil {
		r.GET("/metrics", gin.WrapH(MetricsHandler(s.Config.MetricsToken, s.Metrics.Handler())))
	}
	s.docsRoutes(r)

	// Every /v1 route says who may call it, and the middleware enforces it before the handler
	// runs: operator (the operator key only), appOrOperator (an app's key or the operator's; the
	// handler narrows what each sees), selfOrOperator (the app the path names, or the operator),
	// app (an app's key: the handler acts for that app, see callerOf).
	v1 := r.Group("/v1", s.authenticate)
	operator := v1.Group("", requireOperator("only the operator key creates apps"))
	appOrOperator := v1.Group("")
	self := v1.Group("/apps/:id", requireSelfOrOperator("an app changes only itself"))
	keys := v1.Group("/apps/:id/keys", requireSelfOrOperator("an app manages only its own API keys"))
	app := v1.Group("", requireApp)

	operator.POST("/apps", s.idempotent, s.createApp)
	appOrOperator.GET("/apps", s.listApps)
	self.PATCH("", s.updateApp)
	keys.POST("", s.idempotent, s.createKey)
	keys.GET("", s.listKeys)
	keys.DELETE("/:keyId", s.revokeKey)
	appOrOperator.GET("/event-types", s.listEventTypes)

	t := app.Group("/topics/:topic", s.knownTopic)
	t.POST("/events", s.idempotent, s.registerEvents)
	t.GET("/events", s.listRegisteredEvents)
	t.PUT("/events/:eventName", s.updateRegisteredEvent)
	t.DELETE("/events", s.bulkDeleteEvents)
	t.PATCH("/events", s.bulkDeleteEvents)
	t.POST("/events/bulk-delete", s.bulkDeleteEvents)

	app.POST("/subscriptions", s.idempotent, s.createSubscription)
	app.GET("/subscriptions", s.listSubscriptions)
	app.GET("/subscriptions/:id", s.getSubscription)
	app.DELETE("/subscriptions/:id", s.deleteSubscription)
	app.PATCH("/subscriptions/:id", s.updateSubscription)
	app.POST("/subscriptions/:id/enable", s.enableSubscription)
	app.POST("/subscriptions/:id/disable", s.disableSubscription)
	app.POST("/subscriptions/:id/rotate-secret", s.rotateSecret)
	app.POST("/subscriptions/:id/test", s.testSend)
	app.POST("/signatures/verify", s.verifySignature)

	app.POST("/events", s.idempotent, s.publishEvent)
	app.GET("/events", s.pollEvents)
	app.POST("/callbacks", s.idempotent, s.createCallback)
	app.GET("/deliveries", s.listDeliveries)
	app.GET("/events/:id", s.getEvent)
	app.GET("/events/:id/deliveries", s.listEventDeliveries)
	app.POST("/events/:id/replay", s.idempotent, s.replayEvent)
	app.GET("/deliveries/:id", s.getDelivery)
	app.POST("/deliveries/:id/cancel", s.cancelDelivery)
	app.POST("/deliveries/:id/retry", s.retryDelivery)
	app.POST("/deliveries/:id/replay", s.idempotent, s.replayDelivery)
	app.POST("/deliveries/recover", s.idempotent, s.recoverDeliveries)
	app.GET("/operations/:id", s.getOperation)
	app.POST("/operations/:id/cancel", s.cancelOperation)
	s.portalRoutes(r, v1) // /portal/ and /v1/apps/:id/portal-* (portal.go)
	return r
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func problem(c *gin.Context, status int, detail string) {
	c.Header("Content-Type", "application/problem+json")
	b, _ := json.Marshal(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	c.AbortWithStatus(status)
	c.Writer.Write(b)
}

// fail renders an error from a use case or the layers below as a problem: a refusal with its
// kind's status and its reason; a dependency out of reach as 503; anything else is logged, not
// shown.
func (s *Server) fail(c *gin.Context, err error) {
	var (
		ue    *usecase.Error
		pqErr *pq.Error
	)
	isUse := errors.As(err, &ue)
	switch usecase.KindOf(err) {
	case usecase.Invalid:
		if !isUse && errors.As(err, &pqErr) {
			// PostgreSQL refused the value itself (e.g. \u0000 in JSON): the caller's input, not our fault.
			problem(c, http.StatusBadRequest, "invalid data: "+pqErr.Message)
			return
		}
		badRequest(c, err)
	case usecase.TooLarge:
		problem(c, http.StatusRequestEntityTooLarge, err.Error())
	case usecase.Unprocessable:
		var sv *usecase.SchemaViolations
		if errors.As(err, &sv) {
			writeProblem(c, violationsProblem{Problem: Problem{Type: "about:blank", Title: http.StatusText(http.StatusUnprocessableEntity),
				Status: http.StatusUnprocessableEntity, Detail: sv.Error()}, Topic: sv.Topic, EventName: sv.EventName, Violations: sv.Violations})
			return
		}
		problem(c, http.StatusUnprocessableEntity, err.Error())
	case usecase.NotFound:
		if isUse {
			problem(c, http.StatusNotFound, ue.Error())
			return
		}
		problem(c, http.StatusNotFound, "not found")
	case usecase.Forbidden:
		problem(c, http.StatusForbidden, err.Error())
	case usecase.Conflict:
		problem(c, http.StatusConflict, err.Error())
	case usecase.RateLimited:
		c.Header("Retry-After", strconv.Itoa(int((ue.RetryAfter+time.Second-1)/time.Second)))
		problem(c, http.StatusTooManyRequests, err.Error())
	case usecase.Unavailable:
		s.Log.Warn("dependency unavailable", "path", c.FullPath(), "error", err)
		c.Header("Retry-After", "5")
		problem(c, http.StatusServiceUnavailable, "a dependency is unavailable; try again shortly")
	default:
		s.Log.Error("request failed", "path", c.FullPath(), "error", err)
		problem(c, http.StatusInternalServerError, "internal error")
	}
}

// requestError is input refused with a status and a message for the caller.
type requestError struct {
	Status int
	Detail string
}

func (e *requestError) Error() string { return e.Detail }

// requestProblem writes a requestError as a problem document.
func requestProblem(c *gin.Context, err error) {
	var re *requestError
	if errors.As(err, &re) {
		problem(c, re.Status, re.Detail)
		return
	}
	problem(c, http.StatusBadRequest, err.Error())
}

// readBody reads the (size-limited) request body.
func readBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
			return nil, false
		}
		problem(c, http.StatusBadRequest, "could not read body: "+err.Error())
		return nil, false
	}
	return body, true
}

// bind decodes a JSON body strictly: unknown fields and trailing data are refused.
func bind(c *gin.Context, v any) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	if err := strictDecode(body, v); err != nil {
		problem(c, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return false
	}
	return true
}

// strictDecode decodes one JSON value, refusing unknown fields and trailing data.
func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// recoverPanics answers 500 for a handler that panicked, and logs the panic.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("panic in handler", "path", c.FullPath(), "panic", r)
			problem(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.Log.Debug("http", "method", c.Request.Method, "path", c.FullPath(), "status", c.Writer.Status(), "duration", time.Since(start))
}

func (s *Server) limitBody(c *gin.Context) {
	// room for the envelope around the largest payload
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.Config.MaxPayloadBytes+16<<10)
	c.Next()
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{"postgres": "ok", "temporal": "ok"}
	status := http.StatusOK
	// The answer says what is down, never why: errors can name hosts, users and addresses. The log
	// has them.
	if err := s.Repo.Ping(ctx); err != nil {
		s.Log.Warn("readiness: postgres", "error", err)
		checks["postgres"], status = "unavailable", http.StatusServiceUnavailable
	}
	if err := s.gateway().CheckHealth(ctx); err != nil {
		s.Log.Warn("readiness: temporal", "error", err)
		checks["temporal"], status = "unavailable", http.StatusServiceUnavailable
	}
	c.JSON(status, checks)
}

func (s *Server) knownTopic(c *gin.Context) {
	if t := c.Param("topic"); !s.topicKnown(t) {
		problem(c, http.StatusNotFound, fmt.Sprintf("unknown topic %q; topics are %s", t, strings.Join(s.Config.Topics, ", ")))
		return
	}
	c.Next()
}

func (s *Server) topicKnown(t string) bool { return slices.Contains(s.Config.Topics, t) }

// data wraps a response the way the OS1 API does: {"data": ...}.
func data(c *gin.Context, status int, v any) { c.JSON(status, gin.H{"data": v}) }
