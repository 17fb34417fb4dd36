package delivery

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/hookd/hookd/config"
)

// Policy is a resolved retry schedule for one delivery (defaults merged with the subscription's own).
type Policy struct {
	InitialInterval    time.Duration
	BackoffCoefficient float64
	MaxInterval        time.Duration
	MaxAttempts        int           // total attempts, the first included; 0 = unlimited
	MaxDuration        time.Duration // from the first attempt; 0 = unlimited
	Timeout            time.Duration // one attempt
}

// RetryPolicy is a subscription's own retry schedule; nil fields take the configured defaults.
type RetryPolicy struct {
	InitialIntervalMS  *int64   `db:"retry_initial_ms" json:"initialIntervalMs,omitempty"`
	BackoffCoefficient *float64 `db:"retry_backoff" json:"backoffCoefficient,omitempty"`
	MaxIntervalMS      *int64   `db:"retry_max_interval_ms" json:"maxIntervalMs,omitempty"`
	MaxAttempts        *int32   `db:"retry_max_attempts" json:"maxAttempts,omitempty"`
	MaxDurationMS      *int64   `db:"retry_max_duration_ms" json:"maxDurationMs,omitempty"`
	TimeoutMS          *int64   `db:"timeout_ms" json:"-"` // shown at the subscription's top level
}

// PolicyFor merges a subscription's retry settings over the defaults.
func PolicyFor(c config.Config, rp RetryPolicy) Policy {
	p := Policy{
		InitialInterval:    c.Retry.InitialInterval,
		BackoffCoefficient: c.Retry.BackoffCoefficient,
		MaxInterval:        c.Retry.MaxInterval,
		MaxAttempts:        c.Retry.MaxAttempts,
		MaxDuration:        c.Retry.MaxDuration,
		Timeout:            c.AttemptTimeout,
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	if rp.InitialIntervalMS != nil {
		p.InitialInterval = ms(*rp.InitialIntervalMS)
	}
	if rp.BackoffCoefficient != nil {
		p.BackoffCoefficient = *rp.BackoffCoefficient
	}
	if rp.MaxIntervalMS != nil {
		p.MaxInterval = ms(*rp.MaxIntervalMS)
	}
	if rp.MaxAttempts != nil {
		p.MaxAttempts = int(*rp.MaxAttempts)
	}
	if rp.MaxDurationMS != nil {
		p.MaxDuration = ms(*rp.MaxDurationMS)
	}
	if rp.TimeoutMS != nil {
		p.Timeout = ms(*rp.TimeoutMS)
	}
	// Temporal refuses a retry policy whose maximum interval is below its initial one.
	p.MaxInterval = max(p.MaxInterval, p.InitialInterval)
	return p
}

// String reads the policy out for operators (the Web UI's workflow details).
func (p Policy) String() string {
	attempts := "unlimited attempts"
	if p.MaxAttempts > 0 {
		attempts = fmt.Sprintf("up to %d attempts", p.MaxAttempts)
	}
	within := ""
	if p.MaxDuration > 0 {
		within = " within " + p.MaxDuration.String()
	}
	return fmt.Sprintf("%s%s; waits from %s (×%g) up to %s; %s per attempt", attempts, within, p.InitialInterval,
		p.BackoffCoefficient, p.MaxInterval, p.Timeout)
}

// Backoff is the wait after failed attempt n (n ≥ 1).
func (p Policy) Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.BackoffCoefficient, float64(n-1))
	if p.MaxInterval > 0 && (d > float64(p.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d)) {
		return p.MaxInterval
	}
	return time.Duration(d)
}

// NextDelay is the wait after failed attempt n: the backoff, or the receiver's Retry-After when
// that is longer, never more than MaxInterval. inTime is false when the next attempt would come
// after MaxDuration (counted from firstAttempt): the delivery has run out of time.
func (p Policy) NextDelay(n int, retryAfter time.Duration, firstAttempt, now time.Time) (d time.Duration, inTime bool) {
	d = max(p.Backoff(n), retryAfter)
	if p.MaxInterval > 0 {
		d = min(d, p.MaxInterval)
	}
	if p.MaxDuration > 0 && !firstAttempt.IsZero() && now.Add(d).After(firstAttempt.Add(p.MaxDuration)) {
		return d, false
	}
	return d, true
}

// policyJSON is how a Policy is written into workflow and activity inputs since durations became
// readable there: "1s" rather than 1000000000 (the Temporal Web UI shows inputs as JSON).
type policyJSON struct {
	InitialInterval    jsonDuration
	BackoffCoefficient float64
	MaxInterval        jsonDuration
	MaxAttempts        int
	MaxDuration        jsonDuration
	Timeout            jsonDuration
}

// MarshalJSON writes the durations as Go duration strings ("1s", "1m30s").
func (p Policy) MarshalJSON() ([]byte, error) {
	return json.Marshal(policyJSON{jsonDuration(p.InitialInterval), p.BackoffCoefficient, jsonDuration(p.MaxInterval),
		p.MaxAttempts, jsonDuration(p.MaxDuration), jsonDuration(p.Timeout)})
}

// UnmarshalJSON reads both shapes: duration strings, and the integer nanoseconds of inputs written
// before (recorded histories, workflows started by an older release).
func (p *Policy) UnmarshalJSON(b []byte) error {
	var v policyJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Policy{InitialInterval: time.Duration(v.InitialInterval), BackoffCoefficient: v.BackoffCoefficient,
		MaxInterval: time.Duration(v.MaxInterval), MaxAttempts: v.MaxAttempts, MaxDuration: time.Duration(v.MaxDuration),
		Timeout: time.Duration(v.Timeout)}
	return nil
}

// jsonDuration is a time.Duration written as a duration string and read from one or from
// integer nanoseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string such as \"5s\" or integer nanoseconds: %w", err)
	}
	*d = jsonDuration(n)
	return nil
}
