// Command hookd runs the webhook delivery service: `hookd api`, `hookd worker`, `hookd dev` (both in
// one process), `hookd migrate` and the encryption key commands.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/service"
)

const usage = `usage: hookd <command>

commands:
  api       serve the REST API (-worker: also run a worker in this process, so the workflows
            the API starts for events go to it at once: eager start)
  worker    run a Temporal worker that delivers webhooks
  dev       api and worker in one process (migrates first)
  migrate   apply database migrations
  receive   a demo receiver that prints callbacks and verifies their signatures
            (flags: -addr 127.0.0.1:9000 -secret whsec_... -status 200)

` + keysUsage + `

` + ctlUsage + `

Configuration comes from HOOKD_* environment variables (see README.md).`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if os.Args[1] == "receive" {
		err = receive(ctx, os.Args[2:])
	} else if os.Args[1] == "gen-encryption-key" {
		err = genEncryptionKey(os.Args[2:], os.Stdout)
	} else if ctl, ok := ctlCommands[os.Args[1]]; ok {
		var c *apiClient
		if c, err = newAPIClient(); err == nil {
			err = ctl(ctx, c, os.Args[2:])
		}
	} else {
		err = run(ctx, os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd string) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	switch cmd {
	case "migrate":
		return migrate(ctx, cfg)
	case "rotate-encryption-key":
		return rotateEncryptionKey(ctx, cfg, os.Args[2:], os.Stdout)
	case "api", "worker", "dev":
		// Refuse before touching anything: without the key, secrets could be neither stored nor read.
		if _, err := cfg.RequireEncryptionKeys(); err != nil {
			return err
		}
	case "-h", "--help", "help":
		fmt.Println(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	withWorker := cmd != "api"
	if cmd == "api" {
		// -worker: the workflow an event's publish starts is handed straight to this process's
		// worker (eager start) instead of waiting in the task queue for any worker.
		fs := flag.NewFlagSet("hookd api", flag.ContinueOnError)
		fs.BoolVar(&withWorker, "worker", false, "also run a worker in this process (eager start of the API's workflows)")
		if err := fs.Parse(os.Args[2:]); err != nil {
			return err
		}
	}
	if cmd == "dev" {
		if err := migrate(ctx, cfg); err != nil {
			return err
		}
	}
	app, err := service.Start(ctx, cfg, log, cmd != "worker", withWorker)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return app.Stop()
}

func migrate(ctx context.Context, cfg config.Config) error {
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer d.Close()
	return db.Migrate(ctx, d)
}
