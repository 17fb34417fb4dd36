// Package check validates the Kubernetes manifests `helm template` renders from deploy/helm/hookd,
// offline: nothing here talks to a cluster or downloads a schema. Each document is decoded
// strictly into the Kubernetes API's own Go types (k8s.io/api: unknown or misspelt fields, wrong
// types and unparsable quantities are errors), the ServiceMonitor into the subset of the
// Prometheus Operator's type the chart uses, and the documents are checked against each other:
// selectors select pods, named ports exist, referenced ConfigMaps and Secrets are rendered (or
// are the existingSecret), and the migration hook's Secret exists before the hook runs.
package check

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// ServiceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the chart renders; any
// other field is an error, so a typo cannot pass.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port              string                    `json:"port"`
			Path              string                    `json:"path,omitempty"`
			Interval          string                    `json:"interval,omitempty"`
			BearerTokenSecret *corev1.SecretKeySelector `json:"bearerTokenSecret,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// Manifests are decoded documents.
type Manifests struct {
	Deployments     []appsv1.Deployment
	Services        []corev1.Service
	ConfigMaps      []corev1.ConfigMap
	Secrets         []corev1.Secret
	PDBs            []policyv1.PodDisruptionBudget
	Jobs            []batchv1.Job
	ServiceMonitors []ServiceMonitor
}

// Decode splits a multi-document YAML stream and decodes each document strictly by its kind.
func Decode(stream []byte) (*Manifests, error) {
	m := &Manifests{}
	var errs []error
	for i, doc := range bytes.Split(stream, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		var err error
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			m.Deployments, err = decodeInto(doc, m.Deployments)
		case "v1 Service":
			m.Services, err = decodeInto(doc, m.Services)
		case "v1 ConfigMap":
			m.ConfigMaps, err = decodeInto(doc, m.ConfigMaps)
		case "v1 Secret":
			m.Secrets, err = decodeInto(doc, m.Secrets)
		case "policy/v1 PodDisruptionBudget":
			m.PDBs, err = decodeInto(doc, m.PDBs)
		case "batch/v1 Job":
			m.Jobs, err = decodeInto(doc, m.Jobs)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			m.ServiceMonitors, err = decodeInto(doc, m.ServiceMonitors)
		default:
			err = fmt.Errorf("unexpected %q %q (add it to the validator)", tm.APIVersion, tm.Kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err))
		}
	}
	return m, errors.Join(errs...)
}

func decodeInto[T any](doc []byte, list []T) ([]T, error) {
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		return list, err
	}
	return append(list, v), nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// Validate checks the documents against each other. external names the Secrets that exist
// outside the chart (its existingSecret).
func (m *Manifests) Validate(external ...string) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	meta := func(kind string, om metav1.ObjectMeta) {
		if msgs := validation.IsDNS1123Subdomain(om.Name); len(msgs) > 0 {
			bad("%s %q: name: %s", kind, om.Name, strings.Join(msgs, "; "))
		}
		for k, v := range om.Labels {
			if msgs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(msgs) > 0 {
				bad("%s %q: label %s=%s: %s", kind, om.Name, k, v, strings.Join(msgs, "; "))
			}
		}
	}
	configMaps, secrets := map[string]bool{}, map[string]bool{}
	for _, c := range m.ConfigMaps {
		meta("ConfigMap", c.ObjectMeta)
		configMaps[c.Name] = true
	}
	for _, s := range m.Secrets {
		meta("Secret", s.ObjectMeta)
		secrets[s.Name] = true
	}
	for _, s := range external {
		secrets[s] = true
	}

	type workload struct {
		kind, name string
		pod        corev1.PodTemplateSpec
	}
	var pods []workload
	for _, d := range m.Deployments {
		meta("Deployment", d.ObjectMeta)
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || d.Spec.Selector == nil || sel.Empty() {
			bad("Deployment %q: selector %v: %v", d.Name, d.Spec.Selector, err)
		} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			bad("Deployment %q: selector %s does not match its pod labels %v", d.Name, sel, d.Spec.Template.Labels)
		}
		pods = append(pods, workload{"Deployment", d.Name, d.Spec.Template})
	}
	for _, j := range m.Jobs {
		meta("Job", j.ObjectMeta)
		if p := j.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
			bad("Job %q: restartPolicy %q", j.Name, p)
		}
		pods = append(pods, workload{"Job", j.Name, j.Spec.Template})
	}
	for _, w := range pods {
		spec := w.pod.Spec
		if len(spec.Containers) == 0 {
			bad("%s %q: no containers", w.kind, w.name)
		}
		for _, c := range spec.Containers {
			if c.Name == "" || c.Image == "" {
				bad("%s %q: a container without name or image", w.kind, w.name)
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				if p.ContainerPort < 1 || p.ContainerPort > 65535 {
					bad("%s %q: port %d", w.kind, w.name, p.ContainerPort)
				}
				if p.Name != "" {
					if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
						bad("%s %q: port name %q: %s", w.kind, w.name, p.Name, strings.Join(msgs, "; "))
					}
					ports[p.Name] = true
				}
			}
			for what, pr := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
				if pr == nil {
					if w.kind == "Deployment" {
						bad("%s %q: container %s has no %s probe", w.kind, w.name, c.Name, what)
					}
					continue
				}
				var port *intstrPort
				switch {
				case pr.HTTPGet != nil:
					port = &intstrPort{pr.HTTPGet.Port.String(), pr.HTTPGet.Port.IntValue() == 0}
					if !strings.HasPrefix(pr.HTTPGet.Path, "/") {
						bad("%s %q: %s probe path %q", w.kind, w.name, what, pr.HTTPGet.Path)
					}
				case pr.TCPSocket != nil:
					port = &intstrPort{pr.TCPSocket.Port.String(), pr.TCPSocket.Port.IntValue() == 0}
				default:
					bad("%s %q: %s probe has no handler", w.kind, w.name, what)
				}
				if port != nil && port.named && !ports[port.name] {
					bad("%s %q: %s probe port %q is not a port of container %s", w.kind, w.name, what, port.name, c.Name)
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				bad("%s %q: container %s requests no CPU or memory", w.kind, w.name, c.Name)
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && !configMaps[ef.ConfigMapRef.Name] {
					bad("%s %q: envFrom ConfigMap %q is not rendered", w.kind, w.name, ef.ConfigMapRef.Name)
				}
				if ef.SecretRef != nil && !secrets[ef.SecretRef.Name] {
					bad("%s %q: envFrom Secret %q is neither rendered nor external", w.kind, w.name, ef.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
					bad("%s %q: env %q: %s", w.kind, w.name, e.Name, strings.Join(msgs, "; "))
				}
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !secrets[e.ValueFrom.SecretKeyRef.Name] {
					bad("%s %q: env %s from Secret %q that is neither rendered nor external", w.kind, w.name, e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
		}
	}
	// A pre-install hook runs before the release's plain resources exist: what it reads must be
	// external or a hook that runs before it.
	for _, j := range m.Jobs {
		hook, weight := j.Annotations["helm.sh/hook"], hookWeight(j.ObjectMeta)
		if !strings.Contains(hook, "pre-install") {
			continue
		}
		for _, c := range j.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				for _, s := range m.Secrets {
					if s.Name == e.ValueFrom.SecretKeyRef.Name &&
						(!strings.Contains(s.Annotations["helm.sh/hook"], "pre-install") || hookWeight(s.ObjectMeta) >= weight) {
						bad("Job %q (hook %s, weight %d) reads Secret %q, which does not exist before it", j.Name, hook, weight, s.Name)
					}
					if s.Name == e.ValueFrom.SecretKeyRef.Name {
						if _, ok := s.StringData[e.ValueFrom.SecretKeyRef.Key]; !ok {
							bad("Job %q reads key %s, absent from Secret %q", j.Name, e.ValueFrom.SecretKeyRef.Key, s.Name)
						}
					}
				}
			}
		}
	}
	selects := func(kind, name string, sel labels.Selector) []workload {
		var got []workload
		for _, w := range pods {
			if w.kind == "Deployment" && sel.Matches(labels.Set(w.pod.Labels)) {
				got = append(got, w)
			}
		}
		if len(got) == 0 {
			bad("%s %q: selector %s selects no Deployment's pods", kind, name, sel)
		}
		return got
	}
	servicePorts := map[string][]string{}
	for _, s := range m.Services {
		meta("Service", s.ObjectMeta)
		if len(s.Spec.Selector) == 0 {
			bad("Service %q: no selector", s.Name)
			continue
		}
		selected := selects("Service", s.Name, labels.SelectorFromSet(s.Spec.Selector))
		for _, p := range s.Spec.Ports {
			servicePorts[s.Name] = append(servicePorts[s.Name], p.Name)
			if p.TargetPort.IntValue() != 0 {
				continue
			}
			for _, w := range selected {
				found := false
				for _, c := range w.pod.Spec.Containers {
					for _, cp := range c.Ports {
						found = found || cp.Name == p.TargetPort.String()
					}
				}
				if !found {
					bad("Service %q: targetPort %q is not a port of %s %q", s.Name, p.TargetPort.String(), w.kind, w.name)
				}
			}
		}
	}
	for _, p := range m.PDBs {
		meta("PodDisruptionBudget", p.ObjectMeta)
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			bad("PodDisruptionBudget %q: selector: %v", p.Name, err)
			continue
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			bad("PodDisruptionBudget %q: exactly one of minAvailable and maxUnavailable", p.Name)
		}
		for _, w := range selects("PodDisruptionBudget", p.Name, sel) {
			if d := deployment(m, w.name); d != nil && p.Spec.MinAvailable != nil && p.Spec.MinAvailable.IntValue() > 0 &&
				d.Spec.Replicas != nil && int(*d.Spec.Replicas) <= p.Spec.MinAvailable.IntValue() {
				bad("PodDisruptionBudget %q: minAvailable %s with %d replicas of %q blocks every eviction", p.Name, p.Spec.MinAvailable.String(), *d.Spec.Replicas, d.Name)
			}
		}
	}
	for _, sm := range m.ServiceMonitors {
		meta("ServiceMonitor", sm.ObjectMeta)
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			bad("ServiceMonitor %q: selector: %v", sm.Name, err)
			continue
		}
		if len(sm.Spec.Endpoints) == 0 {
			bad("ServiceMonitor %q: no endpoints", sm.Name)
		}
		for _, ep := range sm.Spec.Endpoints {
			found := false
			for _, s := range m.Services {
				if sel.Matches(labels.Set(s.Labels)) {
					for _, name := range servicePorts[s.Name] {
						found = found || name == ep.Port
					}
				}
			}
			if !found {
				bad("ServiceMonitor %q: no selected Service has a port %q", sm.Name, ep.Port)
			}
			if ep.BearerTokenSecret != nil && !secrets[ep.BearerTokenSecret.Name] {
				bad("ServiceMonitor %q: bearerTokenSecret %q is neither rendered nor external", sm.Name, ep.BearerTokenSecret.Name)
			}
		}
	}
	return errors.Join(errs...)
}

type intstrPort struct {
	name  string
	named bool
}

func deployment(m *Manifests, name string) *appsv1.Deployment {
	for i := range m.Deployments {
		if m.Deployments[i].Name == name {
			return &m.Deployments[i]
		}
	}
	return nil
}

func hookWeight(om metav1.ObjectMeta) int {
	w, _ := strconv.Atoi(om.Annotations["helm.sh/hook-weight"])
	return w
}
