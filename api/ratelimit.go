package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// limiters holds one token bucket per API key (by its hash), so one noisy client slows only itself.
type limiters struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// limiter returns the bucket of a key, made on first use.
func (l *limiters) limiter(keyHash string, perSecond float64, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil || len(l.buckets) > 100_000 {
		l.buckets = map[string]*rate.Limiter{} // a bound on memory; forgetting buckets only refills them
	}
	b, ok := l.buckets[keyHash]
	if !ok {
		b = rate.NewLimiter(rate.Limit(perSecond), burst)
		l.buckets[keyHash] = b
	}
	return b
}

// rateLimited answers 429 with Retry-After when the request's API key has used up its bucket
// (HOOKD_RATE_LIMIT requests/s, bursts of HOOKD_RATE_BURST); it reports whether it did.
func (s *Server) rateLimited(c *gin.Context, key string) bool {
	if s.Config.RateLimit <= 0 {
		return false
	}
	b := s.limits.limiter(string(hashKey(key)), s.Config.RateLimit, max(1, s.Config.RateBurst))
	r := b.Reserve()
	wait := r.Delay()
	if wait == 0 {
		return false
	}
	r.Cancel() // refused requests do not spend tokens
	secs := int(math.Ceil(wait.Seconds()))
	c.Header("Retry-After", strconv.Itoa(max(1, secs)))
	problem(c, http.StatusTooManyRequests, fmt.Sprintf("rate limit of %g requests/s for this API key exceeded; retry in %d s",
		s.Config.RateLimit, max(1, secs)))
	return true
}

// MetricsHandler guards a /metrics handler with HOOKD_METRICS_TOKEN when one is set.
func MetricsHandler(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !equalKeys(r.Header.Get("Authorization"), "Bearer "+token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookd metrics"`)
			http.Error(w, "metrics need Authorization: Bearer <HOOKD_METRICS_TOKEN>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
