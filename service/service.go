// Package service wires hookd together: database, Temporal client, worker and HTTP server.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"

	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/api"
	"github.com/hookd/hookd/background"
	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/engine"
	"github.com/hookd/hookd/mail"
	"github.com/hookd/hookd/metrics"
	"github.com/hookd/hookd/tracing"
	"github.com/hookd/hookd/webhook"
	"github.com/hookd/hookd/worker"
)

// App is a running hookd: API, worker or both.
type App struct {
	URL        string // the API, when it runs here
	MetricsURL string // /metrics of a worker-only process, when HOOKD_METRICS_ADDR is set
	Metrics    *metrics.Metrics
	API        *api.Server // when the API runs here
	// Reconciler is the API's reconciler, when the API runs here: tests drive it.
	Reconciler *background.Reconciler
	stops      []func() error
}

// Stop shuts down what Start started, in reverse order.
func (a *App) Stop() error {
	var errs []error
	for i := len(a.stops) - 1; i >= 0; i-- {
		errs = append(errs, a.stops[i]())
	}
	return errors.Join(errs...)
}

// Option changes how Start builds a part.
type Option func(*options)

type options struct {
	tracer trace.TracerProvider
}

// WithTracerProvider sends traces to tp instead of the exporter the OTEL_* variables describe.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp }
}

// Start connects to PostgreSQL and Temporal and starts the API and/or the worker.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, withAPI, withWorker bool, opts ...Option) (*App, error) {
	keys, err := cfg.RequireEncryptionKeys()
	if err != nil {
		return nil, err
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	app := &App{}
	if o.tracer == nil {
		tp, shutdown, err := tracing.FromEnv(ctx, "hookd")
		if err != nil {
			return nil, err
		}
		app.stops = append(app.stops, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return shutdown(sctx)
		})
		o.tracer = tp
	}
	var interceptors []interceptor.ClientInterceptor
	if !tracing.Off(o.tracer) {
		// One interceptor for the client and every worker built on it: spans cross from the
		// API's start into the workflow, its activities and the workflows they start.
		ti, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
			Tracer: o.tracer.Tracer(tracing.Name), TextMapPropagator: tracing.Propagator()})
		if err != nil {
			return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
		}
		interceptors = append(interceptors, ti)
		log.Info("tracing on")
	}
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	app.stops = append(app.stops, d.Close)
	repo := db.NewRepo(d, keys)
	log.Info("stored secrets encrypted", "current_key", keys.Current(), "keys", keys.IDs())
	m := metrics.New()
	app.Metrics = m
	tc, err := client.DialContext(ctx, client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		// The SDK's own levels, less its ERROR for every receiver failure (worker.SDKLogger).
		Logger:         worker.SDKLogger(log.With("component", "temporal")),
		MetricsHandler: m.TemporalHandler(),
		Interceptors:   interceptors,
	})
	if err != nil {
		app.Stop()
		return nil, fmt.Errorf("connect to temporal at %s: %w", cfg.TemporalAddress, err)
	}
	app.stops = append(app.stops, func() error { tc.Close(); return nil })
	retention := historyRetention(ctx, tc, cfg, log)
	guard, err := webhook.NewGuard(cfg.AllowPrivate, cfg.AllowedTargets)
	if err != nil {
		app.Stop()
		return nil, err
	}

	if withWorker {
		gw := engine.New(tc, cfg)
		w := worker.New(tc, cfg.TaskQueue, &activities.Activities{
			Repo: repo, Sender: webhook.NewSender(guard, o.tracer), Mail: mail.SMTP{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Tracer: o.tracer.Tracer(tracing.Name)},
			Config: cfg, Log: log, Metrics: m, Retries: gw, Events: gw, Replays: gw, HistoryRetention: retention,
		}, gw)
		if err := w.Start(); err != nil {
			app.Stop()
			return nil, fmt.Errorf("start worker: %w", err)
		}
		app.stops = append(app.stops, func() error { w.Stop(); return nil })
		log.Info("worker started", "task_queue", cfg.TaskQueue)
		if cfg.Retention > 0 {
			if err := worker.EnsureRetentionSchedule(ctx, tc, cfg.TaskQueue, cfg.RetentionEvery); err != nil {
				log.Error("old events are not deleted: the retention schedule could not be created", "error", err)
			}
		}
		if !withAPI && cfg.MetricsAddr != "" {
			stop, url, err := serveMetrics(cfg.MetricsAddr, api.MetricsHandler(cfg.MetricsToken, m.Handler()), log)
			if err != nil {
				app.Stop()
				return nil, err
			}
			app.MetricsURL = url
			app.stops = append(app.stops, stop)
		}
	}
	if withAPI {
		m.Registry.MustRegister(runningWorkflows(tc, cfg.TaskQueue))
		srv := &api.Server{Repo: repo, Engine: tc, Tracer: o.tracer, Config: cfg, Guard: guard, Log: log, Metrics: m, HistoryRetention: retention}
		app.API = srv
		cases := srv.UseCases()
		srv.Outbox = background.NewOutbox(repo, cases.Engine, log)
		app.Reconciler = &background.Reconciler{Repo: repo, Engine: cases.Engine, Cases: cases, Config: cfg, Log: log}
		rctx, cancel := context.WithCancel(context.Background())
		go app.Reconciler.Run(rctx, cfg.ReconcileInterval, cfg.ReconcileGrace)
		waitOutbox := srv.Outbox.Run(rctx)
		go func() {
			if err := background.Listen(rctx, cfg.DatabaseURL, log, srv.Invalidations()); err != nil {
				log.Error("key revocations from other processes are not heard: revoked keys work here until their cache entry expires", "error", err)
			}
		}()
		// The outbox records the starts it made before the database closes (a later stop).
		app.stops = append(app.stops, func() error { cancel(); waitOutbox(); return nil })
		stop, addr, err := listenAndServe(cfg.HTTPAddr, srv.Handler(), log)
		if err != nil {
			app.Stop()
			return nil, err
		}
		app.stops = append(app.stops, stop)
		app.URL = "http://" + addr
		log.Info("api listening", "url", app.URL)
	}
	return app, nil
}

// listenAndServe serves h on addr in the background and returns how to stop it and the bound address.
func listenAndServe(addr string, h http.Handler, log *slog.Logger) (stop func() error, bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Every phase of a connection is bounded, so slow or idle clients cannot hold connections
	// (and their goroutines) open: headers 10 s, the whole request 30 s, the answer 60 s (a
	// publish may wait up to 10 s for the engine), idle keep-alive 2 min.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "addr", addr, "error", err)
		}
	}()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return hs.Shutdown(ctx)
	}, ln.Addr().String(), nil
}

func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func() error, url string, err error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	stop, bound, err := listenAndServe(addr, mux, log)
	if err != nil {
		return nil, "", err
	}
	url = "http://" + bound + "/metrics"
	log.Info("metrics listening", "url", url)
	return stop, url, nil
}

// runningWorkflows is a gauge of hookd's open workflows, read from Temporal's visibility store at
// most every 10 s however often Prometheus scrapes.
func runningWorkflows(tc client.Client, taskQueue string) prometheus.Collector {
	var (
		mu      sync.Mutex
		last    time.Time
		value   float64
		request = &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("ExecutionStatus = 'Running' AND TaskQueue = '%s'", taskQueue),
		}
	)
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookd_workflows_running", Help: "Open event, delivery and replay workflows on hookd's task queue.",
	}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 10*time.Second {
			return value
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if resp, err := tc.CountWorkflow(ctx, request); err == nil {
			value, last = float64(resp.GetCount()), time.Now()
		}
		return value
	})
}

// historyRetention is how long the namespace keeps closed workflows, for links that say when a
// history is gone; HOOKD_RETENTION (which the namespace's is set to match) if the server won't say.
func historyRetention(ctx context.Context, tc client.Client, cfg config.Config, log *slog.Logger) time.Duration {
	resp, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.TemporalNamespace})
	if err != nil || resp.GetConfig().GetWorkflowExecutionRetentionTtl() == nil {
		log.Warn("namespace retention unknown; assuming HOOKD_RETENTION", "namespace", cfg.TemporalNamespace, "error", err)
		return cfg.Retention
	}
	return resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration()
}
