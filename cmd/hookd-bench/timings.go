package main

import (
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Timing is the mean of one latency histogram of a scenario's hookd process: where the time goes.
type Timing struct {
	Name   string  `json:"name"`
	Labels string  `json:"labels,omitempty"`
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"meanMs"`
}

// timingFamilies are the histograms worth reading: Temporal task queueing (schedule-to-start), task
// and activity execution, gRPC requests to the server, and hookd's own HTTP attempts.
var timingFamilies = []string{"schedule_to_start", "execution_latency", "request_latency", "endtoend_latency",
	"hookd_delivery_attempt_duration", "hookd_event_to_delivery"}

// keptLabels are the labels that tell timings apart.
var keptLabels = map[string]bool{"operation": true, "activity_type": true, "workflow_type": true}

// timings reads the means of the interesting histograms from a hookd process's registry.
func timings(fams []*dto.MetricFamily) []Timing {
	var out []Timing
	for _, f := range fams {
		name := f.GetName()
		if !wanted(name) {
			continue
		}
		// Sum the series that differ only in labels we drop.
		type acc struct {
			n   uint64
			sum float64
		}
		by := map[string]*acc{}
		for _, mt := range f.GetMetric() {
			var n uint64
			var sum float64
			switch {
			case mt.GetHistogram() != nil:
				n, sum = mt.GetHistogram().GetSampleCount(), mt.GetHistogram().GetSampleSum()
			case mt.GetSummary() != nil:
				n, sum = mt.GetSummary().GetSampleCount(), mt.GetSummary().GetSampleSum()
			default:
				continue
			}
			if n == 0 {
				continue
			}
			key := labelKey(mt.GetLabel())
			a := by[key]
			if a == nil {
				a = &acc{}
				by[key] = a
			}
			a.n += n
			a.sum += sum
		}
		for k, a := range by {
			unit := 1000.0 // seconds -> ms
			if strings.HasSuffix(name, "_ms") || strings.Contains(name, "milliseconds") {
				unit = 1
			}
			out = append(out, Timing{Name: name, Labels: k, Count: a.n, MeanMs: round(a.sum/float64(a.n)*unit, 2)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Labels < out[j].Labels
	})
	return out
}

func wanted(name string) bool {
	for _, w := range timingFamilies {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

func labelKey(ls []*dto.LabelPair) string {
	var parts []string
	for _, l := range ls {
		if keptLabels[l.GetName()] {
			parts = append(parts, l.GetName()+"="+l.GetValue())
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
