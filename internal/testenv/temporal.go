// Package testenv starts the real parts integration tests run against: a Temporal dev server (the
// CLI built by `make`), a PostgreSQL database of their own, an SMTP server and HTTP receivers on
// loopback.
package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// SearchAttributes are the attributes hookd's workflows set.
var SearchAttributes = []string{"HookdEventId", "HookdEventType", "HookdTopic", "HookdSubscriptionId", "HookdDeliveryStatus"}

// TemporalCLI finds the Temporal CLI: $HOOKD_TEMPORAL_CLI, or bin/temporal at the module root.
// It never downloads one.
func TemporalCLI() (string, error) {
	if p := os.Getenv("HOOKD_TEMPORAL_CLI"); p != "" {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		p := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "bin", "temporal")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Temporal CLI: run `make bin/temporal` or set HOOKD_TEMPORAL_CLI")
}

// Temporal is a running Temporal server: a dev server started here, or a server running elsewhere.
type Temporal struct {
	Server   *testsuite.DevServer // nil for a server running elsewhere
	HostPort string
}

// ExternalTemporalEnv names a Temporal frontend (host:port) the integration tests use instead of
// starting a dev server: `make test-cluster` points it at a real server on PostgreSQL, with
// hookd's search attributes registered in namespace default.
const ExternalTemporalEnv = "HOOKD_TEST_TEMPORAL_ADDRESS"

// SharedTemporal is the server a test run shares: the one ExternalTemporalEnv names, else a new
// in-memory dev server.
func SharedTemporal(ctx context.Context) (*Temporal, error) {
	if addr := os.Getenv(ExternalTemporalEnv); addr != "" {
		return &Temporal{HostPort: addr}, nil
	}
	return StartTemporal(ctx, "", nil)
}

// StartTemporal starts an in-memory dev server (dbFile "" ) or one persisted to dbFile, with hookd's
// search attributes registered.
func StartTemporal(ctx context.Context, dbFile string, logs io.Writer) (*Temporal, error) {
	return StartTemporalAt(ctx, "", dbFile, logs)
}

// SQLitePragmas open a dev server's SQLite file the way `make dev` does: a write-ahead log instead
// of a rollback journal, synced at checkpoints rather than at every commit. Measured on this
// repository's 2-core machine it doubles the dev server's throughput (issue 27). What it costs: a
// power cut or kernel crash can lose the last commits before a checkpoint; a crash of the server
// process loses nothing (the log is in the operating system's page cache). It does not apply to
// the production engine, the Temporal server on PostgreSQL.
var SQLitePragmas = []string{"journal_mode=wal", "synchronous=normal"}

// TemporalOptions configure a dev server started by StartTemporalWith.
type TemporalOptions struct {
	HostPort string    // "" for a free port
	DBFile   string    // "" for in memory
	Logs     io.Writer // nil discards the server's output
	// Pragmas open DBFile with these "name=value" SQLite pragmas; nil means SQLitePragmas, an
	// empty non-nil slice none (the CLI's defaults: rollback journal, synchronous=full).
	Pragmas []string
}

// StartTemporalAt starts a dev server on hostPort ("" for a free port), so a test can restart it
// on the same address.
func StartTemporalAt(ctx context.Context, hostPort, dbFile string, logs io.Writer) (*Temporal, error) {
	return StartTemporalWith(ctx, TemporalOptions{HostPort: hostPort, DBFile: dbFile, Logs: logs})
}

// StartTemporalWith starts a dev server with hookd's search attributes registered.
func StartTemporalWith(ctx context.Context, o TemporalOptions) (*Temporal, error) {
	hostPort, dbFile, logs := o.HostPort, o.DBFile, o.Logs
	cli, err := TemporalCLI()
	if err != nil {
		return nil, err
	}
	attrs := make([]temporal.SearchAttributeUpdate, 0, len(SearchAttributes))
	for _, n := range SearchAttributes {
		attrs = append(attrs, temporal.NewSearchAttributeKeyKeyword(n).ValueSet(""))
	}
	if logs == nil {
		logs = io.Discard
	}
	// One task-queue partition, as hookd's production shape recommends for its load: with the
	// default four, tasks that land in a partition no poller is on wait for a poll to reach it.
	args := []string{
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
	}
	if dbFile != "" {
		pragmas := o.Pragmas
		if pragmas == nil {
			pragmas = SQLitePragmas
		}
		for _, p := range pragmas {
			args = append(args, "--sqlite-pragma", p)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(sctx, testsuite.DevServerOptions{
		ExistingPath:     cli,
		DBFilename:       dbFile,
		LogLevel:         "error",
		SearchAttributes: temporal.NewSearchAttributes(attrs...),
		ClientOptions:    &client.Options{Namespace: "default", HostPort: hostPort},
		Stdout:           logs,
		Stderr:           logs,
		ExtraArgs:        args,
	})
	if err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	return &Temporal{Server: srv, HostPort: srv.FrontendHostPort()}, nil
}

// Stop ends the server if it was started here.
func (t *Temporal) Stop() error {
	if t.Server == nil {
		return nil
	}
	return t.Server.Stop()
}
