// Package config loads hookd's settings from environment variables into one typed struct.
package config

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hookd/hookd/keyring"
)

// Config is every setting hookd reads. Field tags name the environment variable.
type Config struct {
	DatabaseURL       string // HOOKD_DATABASE_URL
	TemporalAddress   string // HOOKD_TEMPORAL_ADDRESS
	TemporalNamespace string // HOOKD_TEMPORAL_NAMESPACE
	TaskQueue         string // HOOKD_TASK_QUEUE
	TemporalUIURL     string // HOOKD_TEMPORAL_UI_URL
	HTTPAddr          string // HOOKD_HTTP_ADDR
	MetricsAddr       string // HOOKD_METRICS_ADDR: /metrics of a worker-only process
	MetricsToken      string // HOOKD_METRICS_TOKEN: when set, /metrics needs Authorization: Bearer <token>
	// RateLimit is the requests per second each app may make, all its API keys together (0: no
	// limit), in bursts of up to RateBurst. HOOKD_RATE_LIMIT, HOOKD_RATE_BURST
	RateLimit       float64
	RateBurst       int
	PublicURL       string        // HOOKD_PUBLIC_URL
	OperatorKey     string        // HOOKD_OPERATOR_KEY
	Topics          []string      // HOOKD_TOPICS
	SMTPAddr        string        // HOOKD_SMTP_ADDR
	SMTPFrom        string        // HOOKD_SMTP_FROM
	LogLevel        slog.Level    // HOOKD_LOG_LEVEL
	AllowPrivate    bool          // HOOKD_ALLOW_PRIVATE_TARGETS
	AllowedTargets  []string      // HOOKD_ALLOWED_TARGETS: CIDRs allowed although private
	MaxPayloadBytes int64         // HOOKD_MAX_PAYLOAD_BYTES
	AttemptTimeout  time.Duration // HOOKD_ATTEMPT_TIMEOUT
	Retry           RetryDefaults
	// DisableAfterFailures disables a subscription after this many failed deliveries in a row.
	DisableAfterFailures int // HOOKD_DISABLE_AFTER_FAILURES
	FanOutConcurrency    int // HOOKD_FANOUT_CONCURRENCY
	// FanOutPageSize is how many subscriptions one fan-out step reads and delivers to, which
	// bounds every workflow's payloads and each step's duration whatever the fan-out.
	FanOutPageSize int // HOOKD_FANOUT_PAGE_SIZE
	// FanOutPageTimeout is one page's time budget: a page starts no attempt that could not end
	// within it and leaves the rest to the next page. HOOKD_FANOUT_PAGE_TIMEOUT
	FanOutPageTimeout time.Duration
	// LocalFanOut runs the fan-out as a local activity inside the workflow task (cheaper for the
	// engine) instead of a regular activity. HOOKD_FANOUT_MODE=local|activity
	LocalFanOut bool
	// EagerStart asks the server to hand an event's first workflow task straight to this process's
	// worker (API and worker in one process) with the start: lower latency and more deliveries/s,
	// but the answer then waits for the engine to hand over the task. HOOKD_EAGER_START
	// EagerMaxStarting: while more starts than this are in flight (a burst), start without eager
	// dispatch so the task queue absorbs the burst. HOOKD_EAGER_MAX_STARTING
	EagerStart        bool
	EagerMaxStarting  int
	ReconcileInterval time.Duration // HOOKD_RECONCILE_INTERVAL
	ReconcileGrace    time.Duration // HOOKD_RECONCILE_GRACE
	// ReconcileDeliveryGrace is how long a pending delivery may go unchanged before the reconciler
	// checks that a workflow still runs it. HOOKD_RECONCILE_DELIVERY_GRACE
	ReconcileDeliveryGrace time.Duration
	// Retention is how long events, their deliveries and attempts are kept; a Temporal Schedule
	// deletes older ones (never while a delivery is pending) every RetentionEvery. HOOKD_RETENTION
	// (0 keeps everything), HOOKD_RETENTION_EVERY
	Retention      time.Duration
	RetentionEvery time.Duration
	// SearchAttributes makes workflows set hookd's search attributes; the server must have them registered.
	SearchAttributes bool // HOOKD_SEARCH_ATTRIBUTES
	// EncryptionKeys seal the secrets stored in PostgreSQL (app and subscription secrets, callback
	// keys); the first key seals, all of them open. Nil when HOOKD_ENCRYPTION_KEY is unset: only
	// the processes that open the repository need it (see RequireEncryptionKeys).
	EncryptionKeys *keyring.Keyring // HOOKD_ENCRYPTION_KEY
}

// RetryDefaults apply to subscriptions that do not set their own policy.
type RetryDefaults struct {
	InitialInterval    time.Duration // HOOKD_RETRY_INITIAL_INTERVAL
	BackoffCoefficient float64       // HOOKD_RETRY_BACKOFF
	MaxInterval        time.Duration // HOOKD_RETRY_MAX_INTERVAL
	MaxAttempts        int           // HOOKD_RETRY_MAX_ATTEMPTS
	MaxDuration        time.Duration // HOOKD_RETRY_MAX_DURATION
}

// Load reads the environment. Unset variables take production defaults.
func Load() (Config, error) {
	return load(os.Getenv)
}

func load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:            p.str("HOOKD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hookd?sslmode=disable"),
		TemporalAddress:        p.str("HOOKD_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace:      p.str("HOOKD_TEMPORAL_NAMESPACE", "default"),
		TaskQueue:              p.str("HOOKD_TASK_QUEUE", "hookd"),
		TemporalUIURL:          p.str("HOOKD_TEMPORAL_UI_URL", "http://127.0.0.1:8233"),
		HTTPAddr:               p.str("HOOKD_HTTP_ADDR", "127.0.0.1:8080"),
		MetricsAddr:            p.str("HOOKD_METRICS_ADDR", ""),
		MetricsToken:           p.str("HOOKD_METRICS_TOKEN", ""),
		RateLimit:              p.float("HOOKD_RATE_LIMIT", 1000),
		RateBurst:              p.integer("HOOKD_RATE_BURST", 2000),
		PublicURL:              p.str("HOOKD_PUBLIC_URL", ""),
		OperatorKey:            p.str("HOOKD_OPERATOR_KEY", ""),
		Topics:                 p.list("HOOKD_TOPICS", []string{"participant", "entity", "container"}),
		SMTPAddr:               p.str("HOOKD_SMTP_ADDR", "127.0.0.1:1025"),
		SMTPFrom:               p.str("HOOKD_SMTP_FROM", "hookd@localhost"),
		AllowPrivate:           p.boolean("HOOKD_ALLOW_PRIVATE_TARGETS", false),
		AllowedTargets:         p.list("HOOKD_ALLOWED_TARGETS", nil),
		ReconcileInterval:      p.duration("HOOKD_RECONCILE_INTERVAL", 15*time.Second),
		ReconcileGrace:         p.duration("HOOKD_RECONCILE_GRACE", 30*time.Second),
		ReconcileDeliveryGrace: p.duration("HOOKD_RECONCILE_DELIVERY_GRACE", 5*time.Minute),
		Retention:              p.duration("HOOKD_RETENTION", 30*24*time.Hour),
		RetentionEvery:         p.duration("HOOKD_RETENTION_EVERY", time.Hour),
		MaxPayloadBytes:        int64(p.integer("HOOKD_MAX_PAYLOAD_BYTES", 256<<10)),
		AttemptTimeout:         p.duration("HOOKD_ATTEMPT_TIMEOUT", 20*time.Second),
		Retry: RetryDefaults{
			InitialInterval:    p.duration("HOOKD_RETRY_INITIAL_INTERVAL", 5*time.Second),
			BackoffCoefficient: p.float("HOOKD_RETRY_BACKOFF", 2),
			MaxInterval:        p.duration("HOOKD_RETRY_MAX_INTERVAL", time.Hour),
			MaxAttempts:        p.integer("HOOKD_RETRY_MAX_ATTEMPTS", 30),
			MaxDuration:        p.duration("HOOKD_RETRY_MAX_DURATION", 24*time.Hour),
		},
		DisableAfterFailures: p.integer("HOOKD_DISABLE_AFTER_FAILURES", 5),
		FanOutConcurrency:    p.integer("HOOKD_FANOUT_CONCURRENCY", 32),
		FanOutPageSize:       p.integer("HOOKD_FANOUT_PAGE_SIZE", 500),
		FanOutPageTimeout:    p.duration("HOOKD_FANOUT_PAGE_TIMEOUT", 5*time.Minute),
		SearchAttributes:     p.boolean("HOOKD_SEARCH_ATTRIBUTES", true),
		EagerStart:           p.boolean("HOOKD_EAGER_START", true),
		EagerMaxStarting:     p.integer("HOOKD_EAGER_MAX_STARTING", 8),
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		p.errs = append(p.errs, fmt.Sprintf("HOOKD_RATE_LIMIT: %v is not a rate (requests/s, 0 for no limit)", c.RateLimit))
	}
	if c.RateBurst < 1 {
		p.errs = append(p.errs, fmt.Sprintf("HOOKD_RATE_BURST: %d; a burst is at least 1 request", c.RateBurst))
	}
	switch mode := p.str("HOOKD_FANOUT_MODE", "local"); mode {
	case "local":
		c.LocalFanOut = true
	case "activity":
	default:
		p.errs = append(p.errs, fmt.Sprintf("HOOKD_FANOUT_MODE: %q is neither local nor activity", mode))
	}
	if err := c.LogLevel.UnmarshalText([]byte(p.str("HOOKD_LOG_LEVEL", "info"))); err != nil {
		p.errs = append(p.errs, fmt.Sprintf("HOOKD_LOG_LEVEL: %v", err))
	}
	if spec := p.str("HOOKD_ENCRYPTION_KEY", ""); spec != "" {
		k, err := keyring.Parse(spec)
		if err != nil {
			p.errs = append(p.errs, fmt.Sprintf("HOOKD_ENCRYPTION_KEY: %v; the format is %s", err, keyring.Format))
		}
		c.EncryptionKeys = k
	}
	if len(p.errs) > 0 {
		return Config{}, fmt.Errorf("config: %s", strings.Join(p.errs, "; "))
	}
	return c, nil
}

// RequireEncryptionKeys returns the keyring, or an error saying how to make one: a process that
// stores or signs with secrets must not start without it, or it would write them in plain text
// or fail to read them.
func (c Config) RequireEncryptionKeys() (*keyring.Keyring, error) {
	if c.EncryptionKeys == nil {
		return nil, fmt.Errorf("HOOKD_ENCRYPTION_KEY is not set: secrets are stored encrypted with it. "+
			"Set it to %s. Keep it safe: without it the stored secrets cannot be read", keyring.Format)
	}
	return c.EncryptionKeys, nil
}

type parser struct {
	getenv func(string) string
	errs   []string
}

func (p *parser) str(key, def string) string {
	if v := strings.TrimSpace(p.getenv(key)); v != "" {
		return v
	}
	return def
}

func (p *parser) list(key string, def []string) []string {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) integer(key string, def int) int {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s: %v", key, err))
	}
	return n
}

func (p *parser) float(key string, def float64) float64 {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s: %v", key, err))
	}
	return f
}

func (p *parser) boolean(key string, def bool) bool {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s: %v", key, err))
	}
	return b
}

func (p *parser) duration(key string, def time.Duration) time.Duration {
	v := p.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s: %v", key, err))
	}
	return d
}
