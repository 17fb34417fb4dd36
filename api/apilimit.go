package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

const (
	// maxBuckets bounds each set of token buckets (apps, client addresses); past it the least
	// recently used bucket goes.
	maxBuckets = 100_000
	// bucketIdle is how long an unused bucket is kept. A bucket left alone that long is full again
	// (for any burst/rate up to it; the app buckets keep theirs longer when it is longer), so
	// dropping it changes nothing.
	bucketIdle = 10 * time.Minute
	// A client address may fail authentication authFailureBurst times at once, then once per
	// authFailureEvery: enough for a person fixing a typo, too little to cost the database.
	authFailureBurst = 20
	authFailureEvery = time.Second
)

// apiRateLimiter holds the API's own token buckets: one per app for its requests to the API
// (HOOKD_RATE_LIMIT; all its API keys share it, so minting keys does not multiply its budget) and
// one per client address for failed authentications. (A subscription's rateLimit, how fast hookd
// POSTs to its receiver, is another thing: the throttles in package activities.)
type apiRateLimiter struct {
	appsOnce, failuresOnce sync.Once
	mu                     sync.Mutex // makes a bucket's get-or-create atomic
	appBuckets             *expirable.LRU[string, *rate.Limiter]
	failureBuckets         *expirable.LRU[string, *rate.Limiter]
}

// bucket returns the bucket under key, made on first use; each use keeps it another idle period.
func (l *apiRateLimiter) bucket(c *expirable.LRU[string, *rate.Limiter], key string, perSecond rate.Limit, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := c.Peek(key)
	if !ok {
		b = rate.NewLimiter(perSecond, burst)
	}
	c.Add(key, b)
	return b
}

// app returns an app's request bucket.
func (l *apiRateLimiter) app(appID string, perSecond float64, burst int) *rate.Limiter {
	l.appsOnce.Do(func() {
		l.appBuckets = expirable.NewLRU[string, *rate.Limiter](maxBuckets, nil,
			max(bucketIdle, time.Duration(float64(burst)/perSecond*float64(time.Second))))
	})
	return l.bucket(l.appBuckets, appID, rate.Limit(perSecond), burst)
}

// failures returns a client address's bucket of failed authentications.
func (l *apiRateLimiter) failures(addr string) *rate.Limiter {
	l.failuresOnce.Do(func() { l.failureBuckets = expirable.NewLRU[string, *rate.Limiter](maxBuckets, nil, bucketIdle) })
	return l.bucket(l.failureBuckets, addr, rate.Every(authFailureEvery), authFailureBurst)
}

// overAPIRateLimit answers 429 with Retry-After when the app has used up its bucket (HOOKD_RATE_LIMIT
// requests/s, bursts of HOOKD_RATE_BURST, shared by all its API keys); it reports whether it did.
func (s *Server) overAPIRateLimit(c *gin.Context, appID string) bool {
	if s.Config.RateLimit <= 0 {
		return false
	}
	b := s.apiLimits.app(appID, s.Config.RateLimit, max(1, s.Config.RateBurst))
	now := time.Now()
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait == 0 {
		return false
	}
	r.CancelAt(now) // refused requests do not spend tokens
	tooManyRequests(c, wait, fmt.Sprintf("rate limit of %g requests/s for this app (all its API keys together) exceeded", s.Config.RateLimit))
	return true
}

// tooManyRequests answers 429 with the wait in Retry-After (whole seconds, at least 1) and in the detail.
func tooManyRequests(c *gin.Context, wait time.Duration, why string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Header("Retry-After", strconv.Itoa(secs))
	problem(c, http.StatusTooManyRequests, fmt.Sprintf("%s; retry in %d s", why, secs))
}
