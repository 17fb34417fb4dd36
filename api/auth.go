package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/usecase"
)

const (
	ctxApp      = "hookd.app"
	ctxOperator = "hookd.operator"
	keyPrefix   = "hk_"
)

// authenticate accepts the operator key from the environment or an app's API key. A key not in
// the cache is looked up at the expense of the client address's budget of failed authentications
// (see lookupKey); an app's requests, whichever of its keys makes them, share its rate limit.
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		c.Header("WWW-Authenticate", `Bearer realm="hookd"`)
		problem(c, http.StatusUnauthorized, "missing API key: send Authorization: Bearer <key>")
		return
	}
	if s.Config.OperatorKey != "" && equalKeys(key, s.Config.OperatorKey) {
		c.Set(ctxOperator, true)
		c.Next()
		return
	}
	app, ok := s.keys.cached(hashKey(key))
	if !ok {
		if app, ok = s.lookupKey(c, hashKey(key)); !ok {
			return
		}
	}
	if s.overAPIRateLimit(c, app.ID) {
		return
	}
	c.Set(ctxApp, app)
	c.Next()
}

// lookupKey finds the app of a key that is not in the cache, or answers the request (401, 429 or
// the database's error) and returns false. The lookup holds one token of the client address's
// failed-authentication bucket: an invalid key spends it, a valid one hands it back. So a flood
// of invalid keys from one address costs at most authFailureBurst queries and then one per
// authFailureEvery, answered 429 meanwhile, however many requests run at once.
//
// Concurrent lookups of one key (a client's connection pool right after it got a new key) share
// the first one's query and token, so they neither spend the budget nor multiply the queries.
func (s *Server) lookupKey(c *gin.Context, h []byte) (db.App, bool) {
	addr := clientAddr(c)
	v, err, _ := s.keys.flight.Do(string(h), func() (any, error) {
		b := s.apiLimits.failures(addr)
		now := time.Now()
		r := b.ReserveN(now, 1)
		if wait := r.DelayFrom(now); wait > 0 {
			r.CancelAt(now)
			return nil, &authThrottled{wait: wait}
		}
		// The query outlives a leader that hung up: the others wait for its answer.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 10*time.Second)
		defer cancel()
		app, err := s.keys.lookup(ctx, h, s.Repo.AppByKeyHash)
		if !errors.Is(err, db.ErrNotFound) {
			r.CancelAt(now) // no failed authentication: the token goes back
		}
		return app, err
	})
	var throttled *authThrottled
	switch {
	case errors.As(err, &throttled):
		tooManyRequests(c, throttled.wait, "too many failed authentications from this address")
		return db.App{}, false
	case errors.Is(err, db.ErrNotFound):
		c.Header("WWW-Authenticate", `Bearer realm="hookd", error="invalid_token"`)
		problem(c, http.StatusUnauthorized, "invalid API key")
		return db.App{}, false
	case err != nil:
		s.fail(c, err)
		return db.App{}, false
	}
	return v.(db.App), true
}

// authThrottled is a lookup refused because its address spent its failed-authentication budget.
type authThrottled struct{ wait time.Duration }

func (e *authThrottled) Error() string { return "too many failed authentications" }

// clientAddr is what failed authentications are counted by: the connection's peer address (not
// a forwarded header, which the client writes), an IPv6 one as its /64 (a host holds a whole
// /64, and would otherwise get a fresh budget per address).
func clientAddr(c *gin.Context) string {
	ip, err := netip.ParseAddr(c.RemoteIP())
	if err != nil {
		return c.RemoteIP()
	}
	if ip = ip.Unmap(); ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// equalKeys compares secrets in constant time.
func equalKeys(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// caller returns the authenticated app; operators have none and are refused where an app is needed.
func caller(c *gin.Context) (db.App, bool) {
	v, ok := c.Get(ctxApp)
	if !ok {
		problem(c, http.StatusForbidden, "this endpoint needs an app's API key, not the operator key")
		return db.App{}, false
	}
	return v.(db.App), true
}

// callerOf is the caller of a route behind requireApp, for the use cases.
func callerOf(c *gin.Context) usecase.Caller { return usecase.AppCaller(c.MustGet(ctxApp).(db.App)) }

func isOperator(c *gin.Context) bool { return c.GetBool(ctxOperator) }

// requireApp lets through the requests made with an app's API key.
func requireApp(c *gin.Context) {
	if _, ok := caller(c); ok {
		c.Next()
	}
}

// requireOperator lets through the requests made with the operator key; others are refused with
// refusal.
func requireOperator(refusal string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !isOperator(c) {
			problem(c, http.StatusForbidden, refusal)
			return
		}
		c.Next()
	}
}

// requireSelfOrOperator lets through the operator and the app the path's :id names; another app
// is refused with refusal.
func requireSelfOrOperator(refusal string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := appOwner(c, refusal); ok {
			c.Next()
		}
	}
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func newKey() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// keyCacheTTL bounds how long a looked-up API key is trusted without asking the database again,
// and how long a key found invalid is refused without asking (a flood of one bad key costs one
// query per TTL); maxCachedKeys bounds each of the two caches.
const (
	keyCacheTTL   = 30 * time.Second
	maxCachedKeys = 10_000
)

// keyCache remembers recent API key lookups, found and not found: one database round trip per
// key and TTL instead of one per request. Entries are keyed by the key's hash.
//
// A lookup that was under way when a key was revoked must not cache what it read before the
// revocation (it would keep the revoked key working for a TTL): every forget bumps epoch, and a
// lookup caches its answer only if epoch has not moved since it started.
type keyCache struct {
	once    sync.Once
	found   *expirable.LRU[string, db.App]
	missing *expirable.LRU[string, struct{}]
	mu      sync.Mutex // orders forgets against a lookup's check of epoch and its insert
	epoch   uint64
	flight  singleflight.Group // concurrent lookups of one key hash share one
	// query replaces the repository's lookup (tests); afterQuery runs between a lookup's query
	// and its insert (tests interleave a revocation there).
	query      func(ctx context.Context, keyHash []byte) (db.App, error)
	afterQuery func()
}

func (k *keyCache) init() {
	k.once.Do(func() {
		k.found = expirable.NewLRU[string, db.App](maxCachedKeys, nil, keyCacheTTL)
		k.missing = expirable.NewLRU[string, struct{}](maxCachedKeys, nil, keyCacheTTL)
	})
}

// cached returns the app of a key found recently.
func (k *keyCache) cached(h []byte) (db.App, bool) {
	k.init()
	return k.found.Get(string(h))
}

// lookup finds the app of a key hash: from the cache, or with query (db.ErrNotFound when no
// active key has that hash), caching the answer.
func (k *keyCache) lookup(ctx context.Context, h []byte, query func(context.Context, []byte) (db.App, error)) (db.App, error) {
	k.init()
	if app, ok := k.found.Get(string(h)); ok {
		return app, nil
	}
	if _, ok := k.missing.Get(string(h)); ok {
		return db.App{}, db.ErrNotFound
	}
	if k.query != nil {
		query = k.query
	}
	k.mu.Lock()
	epoch := k.epoch
	k.mu.Unlock()
	app, err := query(ctx, h)
	if k.afterQuery != nil {
		k.afterQuery()
	}
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return db.App{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.epoch != epoch {
		return app, err // a key was revoked meanwhile: answer this request, remember nothing
	}
	if err != nil {
		k.missing.Add(string(h), struct{}{})
		return db.App{}, err
	}
	k.found.Add(string(h), app)
	return app, nil
}

// added forgets that a new key's hash was not found (it could only have been tried by whoever
// guessed it, but a refusal must not outlive the key's creation here).
func (k *keyCache) added(hash string) {
	k.init()
	k.missing.Remove(hash)
}

// forget drops one key hash from the cache.
func (k *keyCache) forget(hash string) {
	k.init()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epoch++
	k.found.Remove(hash)
}

// forgetAll drops every cached key (not the refusals: a revocation only ever takes keys away).
func (k *keyCache) forgetAll() {
	k.init()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epoch++
	k.found.Purge()
}
