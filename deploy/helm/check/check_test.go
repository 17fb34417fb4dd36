package check

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// helm is the helm binary `make helm-check` built (HELM), or the one on PATH.
func helm(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("no helm: run make helm-check")
	}
	return h
}

func render(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "hookd", "../hookd", "--namespace", "hookd"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &renderError{err, stderr.String()}
	}
	return out, nil
}

type renderError struct {
	err    error
	stderr string
}

func (e *renderError) Error() string { return e.err.Error() + ": " + e.stderr }

const inline = "secrets.databaseURL=postgres://hookd@db:5432/hookd,secrets.encryptionKey=k1:AAAA,secrets.operatorKey=op"

// The value sets operators use render documents that decode strictly into the Kubernetes types
// and fit together.
func TestChartRendersValidManifests(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		external []string
		kinds    map[string]int
	}{
		{"defaults with inline secrets", []string{"--set", inline}, nil,
			map[string]int{"Deployment": 2, "Service": 2, "PodDisruptionBudget": 2, "Job": 1, "Secret": 1, "ConfigMap": 1}},
		{"existing secret, ServiceMonitor with a token", []string{"--set", "secrets.existingSecret=hookd-keys,metrics.serviceMonitor.enabled=true,metrics.tokenInSecret=true"},
			[]string{"hookd-keys"}, map[string]int{"ServiceMonitor": 1, "Secret": 0, "Job": 1}},
		{"inline metrics token, no PDBs, no migration, extra config", []string{"--set", inline + ",secrets.metricsToken=t,metrics.serviceMonitor.enabled=true," +
			"api.pdb.enabled=false,worker.pdb.enabled=false,migration.enabled=false,worker.replicas=4,extraConfig.HOOKD_FANOUT_PAGE_SIZE=200,extraConfig.OTEL_EXPORTER_OTLP_ENDPOINT=http://otel:4318"},
			nil, map[string]int{"PodDisruptionBudget": 0, "Job": 0, "ServiceMonitor": 1}},
		{"APIs with a worker of their own (make cluster's combined shape)", []string{"--set", inline + ",api.worker=true"}, nil,
			map[string]int{"Deployment": 2, "Service": 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := render(t, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(c.external...); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{"Deployment": len(m.Deployments), "Service": len(m.Services), "PodDisruptionBudget": len(m.PDBs),
				"Job": len(m.Jobs), "Secret": len(m.Secrets), "ConfigMap": len(m.ConfigMaps), "ServiceMonitor": len(m.ServiceMonitors)}
			for kind, n := range c.kinds {
				if got[kind] != n {
					t.Errorf("%d %s, want %d", got[kind], kind, n)
				}
			}
			for _, d := range m.Deployments {
				c := d.Spec.Template.Spec.Containers[0]
				if strings.HasSuffix(d.Name, "-api") && (c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz") {
					t.Errorf("%s: readiness probe %+v, want /readyz", d.Name, c.ReadinessProbe)
				}
			}
			if strings.Contains(c.name, "token") {
				for _, ep := range m.ServiceMonitors[0].Spec.Endpoints {
					if ep.BearerTokenSecret == nil || ep.BearerTokenSecret.Key != "HOOKD_METRICS_TOKEN" {
						t.Errorf("ServiceMonitor endpoint %s sends no metrics token", ep.Port)
					}
				}
			}
		})
	}
}

// Values the chart must refuse: helm template fails (values.schema.json or the templates).
func TestChartRefusesBadValues(t *testing.T) {
	for name, args := range map[string][]string{
		"no secrets":                 nil,
		"a secret in the ConfigMap":  {"--set", inline + ",config.HOOKD_DATABASE_URL=postgres://x"},
		"a secret in extraConfig":    {"--set", inline + ",extraConfig.HOOKD_ENCRYPTION_KEY=k"},
		"an unknown value":           {"--set", inline + ",api.replica=3"},
		"a misspelt log level":       {"--set", inline + ",config.HOOKD_LOG_LEVEL=verbose"},
		"a non-HOOKD setting":        {"--set", inline + ",extraConfig.PATH=/tmp"},
		"replicas of the wrong type": {"--set", inline + ",worker.replicas=two"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := render(t, args...); err == nil {
				t.Errorf("helm template accepted %v", args)
			}
		})
	}
}

// The validator itself fails on what a schema validator would catch.
func TestValidatorRejects(t *testing.T) {
	good, err := render(t, "--set", inline)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"an unknown field":            {"          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          imagePulPolicy: Always\n"},
		"a wrong type":                {"  replicas: 2\n", "  replicas: two\n"},
		"an unparsable quantity":      {"cpu: 100m", "cpu: 100 millicores"},
		"a probe on a missing port":   {"tcpSocket: { port: metrics }", "tcpSocket: { port: metricz }"},
		"a selector missing its pods": {"      app.kubernetes.io/component: api\n  template:", "      app.kubernetes.io/component: apis\n  template:"},
		"an unrendered ConfigMap":     {"name: hookd\n            - secretRef:", "name: hookd-config\n            - secretRef:"},
		"an invalid name":             {"name: hookd-worker-metrics", "name: hookd_worker_metrics"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(good), edit[0]) {
				t.Fatalf("the rendering has no %q to change", edit[0])
			}
			m, err := Decode([]byte(strings.Replace(string(good), edit[0], edit[1], 1)))
			if err == nil {
				err = m.Validate()
			}
			if err == nil {
				t.Errorf("accepted %s", name)
			} else {
				t.Logf("%s: %v", name, err)
			}
		})
	}
}
