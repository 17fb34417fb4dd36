package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/service"
)

// system is the hookd under measurement: in this process (service.Start), or as the production
// topology runs it, `hookd api` and `hookd worker` in processes of their own (-processes).
type system interface {
	url() string
	// gather reads hookd's metrics (its own and the Temporal SDK's).
	gather() []*dto.MetricFamily
	// pids are hookd's processes, whose CPU and memory the monitor reports as hookd's; none when
	// hookd runs in the bench's process.
	pids() []int
	stop() error
}

type inProcess struct{ app *service.App }

func (p inProcess) url() string { return p.app.URL }
func (p inProcess) pids() []int { return nil }
func (p inProcess) stop() error { return p.app.Stop() }
func (p inProcess) gather() []*dto.MetricFamily {
	if p.app.Metrics == nil || p.app.Metrics.Registry == nil {
		return nil
	}
	fams, _ := p.app.Metrics.Registry.Gather()
	return fams
}

// processes is `hookd api` (or `hookd api -worker`) and `hookd worker`, each a process of its
// own, configured through the same HOOKD_* variables as in production.
type processes struct {
	apiURL     string
	metricURLs []string
	cmds       []*exec.Cmd
}

func (p *processes) url() string { return p.apiURL }

func (p *processes) pids() []int {
	var out []int
	for _, c := range p.cmds {
		out = append(out, c.Process.Pid)
	}
	return out
}

// gather scrapes every process's /metrics and merges the families by name.
func (p *processes) gather() []*dto.MetricFamily {
	byName := map[string]*dto.MetricFamily{}
	var order []string
	for _, u := range p.metricURLs {
		resp, err := http.Get(u)
		if err != nil {
			say("note: scrape %s: %v", u, err)
			continue
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			say("note: scrape %s: %v", u, err)
			continue
		}
		for name, f := range fams {
			if have, ok := byName[name]; ok {
				have.Metric = append(have.Metric, f.Metric...)
				continue
			}
			byName[name] = f
			order = append(order, name)
		}
	}
	out := make([]*dto.MetricFamily, 0, len(order))
	for _, n := range order {
		out = append(out, byName[n])
	}
	return out
}

func (p *processes) stop() error {
	var errs []error
	for _, c := range p.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range p.cmds {
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				errs = append(errs, err)
			}
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			errs = append(errs, fmt.Errorf("%s did not stop in 30 s", strings.Join(c.Args, " ")))
		}
	}
	return errors.Join(errs...)
}

// buildHookd builds cmd/hookd into dir (the bench runs from the repository's root).
func buildHookd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "hookd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/hookd")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build hookd: %w", err)
	}
	return bin, nil
}

// startProcesses runs `hookd api` and `hookd worker` with cfg as their environment, and waits
// until the API answers. Shape combined runs the API as `hookd api -worker` (make cluster's
// HOOKD_CLUSTER_SHAPE=combined): the workflows it starts go eagerly to its own worker.
func startProcesses(ctx context.Context, bin string, cfg config.Config, keys, shape string, logs io.Writer) (*processes, error) {
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	workerMetrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"HOOKD_DATABASE_URL="+cfg.DatabaseURL,
		"HOOKD_TEMPORAL_ADDRESS="+cfg.TemporalAddress,
		"HOOKD_TEMPORAL_NAMESPACE="+cfg.TemporalNamespace,
		"HOOKD_TASK_QUEUE="+cfg.TaskQueue,
		"HOOKD_OPERATOR_KEY="+cfg.OperatorKey,
		"HOOKD_SMTP_ADDR="+cfg.SMTPAddr,
		"HOOKD_ALLOW_PRIVATE_TARGETS=true",
		"HOOKD_SEARCH_ATTRIBUTES=true",
		"HOOKD_LOG_LEVEL="+cfg.LogLevel.String(),
		"HOOKD_ENCRYPTION_KEY="+keys,
	)
	p := &processes{apiURL: "http://" + apiAddr, metricURLs: []string{"http://" + apiAddr + "/metrics", "http://" + workerMetrics + "/metrics"}}
	apiArgs := []string{"api"}
	if shape == "combined" {
		apiArgs = append(apiArgs, "-worker")
	}
	for _, c := range []struct {
		args []string
		env  string
	}{
		{[]string{"worker"}, "HOOKD_METRICS_ADDR=" + workerMetrics},
		{apiArgs, "HOOKD_HTTP_ADDR=" + apiAddr},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = append(env, c.env)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			p.stop()
			return nil, fmt.Errorf("start hookd %s: %w", strings.Join(c.args, " "), err)
		}
		p.cmds = append(p.cmds, cmd)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(p.apiURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("hookd api at %s not ready after a minute", p.apiURL)
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
