// Package service wires hookd together: database, Temporal client, worker and HTTP server.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/api"
	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/mail"
	"github.com/hookd/hookd/webhook"
	"github.com/hookd/hookd/worker"
)

// App is a running hookd: API, worker or both.
type App struct {
	URL   string
	stops []func() error
}

// Stop shuts down what Start started, in reverse order.
func (a *App) Stop() error {
	var errs []error
	for i := len(a.stops) - 1; i >= 0; i-- {
		errs = append(errs, a.stops[i]())
	}
	return errors.Join(errs...)
}

// Start connects to PostgreSQL and Temporal and starts the API and/or the worker.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger, withAPI, withWorker bool) (*App, error) {
	app := &App{}
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	app.stops = append(app.stops, d.Close)
	repo := db.NewRepo(d)
	tc, err := client.DialContext(ctx, client.Options{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: tlog.NewStructuredLogger(log.With("component", "temporal")),
	})
	if err != nil {
		app.Stop()
		return nil, fmt.Errorf("connect to temporal at %s: %w", cfg.TemporalAddress, err)
	}
	app.stops = append(app.stops, func() error { tc.Close(); return nil })
	guard, err := webhook.NewGuard(cfg.AllowPrivate, cfg.AllowedTargets)
	if err != nil {
		app.Stop()
		return nil, err
	}

	if withWorker {
		w := worker.New(tc, cfg.TaskQueue, &activities.Activities{
			Repo: repo, Sender: webhook.NewSender(guard), Mail: mail.SMTP{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom},
			Config: cfg, Log: log,
		})
		if err := w.Start(); err != nil {
			app.Stop()
			return nil, fmt.Errorf("start worker: %w", err)
		}
		app.stops = append(app.stops, func() error { w.Stop(); return nil })
		log.Info("worker started", "task_queue", cfg.TaskQueue)
	}
	if withAPI {
		srv := &api.Server{Repo: repo, Engine: tc, Config: cfg, Guard: guard, Log: log}
		hs := &http.Server{Addr: cfg.HTTPAddr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			app.Stop()
			return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
		app.URL = "http://" + ln.Addr().String()
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "error", err)
			}
		}()
		rctx, cancel := context.WithCancel(context.Background())
		go srv.Reconcile(rctx, cfg.ReconcileInterval, cfg.ReconcileGrace)
		app.stops = append(app.stops, func() error {
			cancel()
			sctx, done := context.WithTimeout(context.Background(), 10*time.Second)
			defer done()
			return hs.Shutdown(sctx)
		})
		log.Info("api listening", "url", app.URL)
	}
	return app, nil
}
