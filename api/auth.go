package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/db"
)

const (
	ctxApp      = "hookd.app"
	ctxOperator = "hookd.operator"
	keyPrefix   = "hk_"
)

// authenticate accepts the operator key from the environment or an app's API key.
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
	app, err := s.appByKey(c.Request.Context(), key)
	if errors.Is(err, db.ErrNotFound) {
		c.Header("WWW-Authenticate", `Bearer realm="hookd", error="invalid_token"`)
		problem(c, http.StatusUnauthorized, "invalid API key")
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.rateLimited(c, key) {
		return
	}
	c.Set(ctxApp, app)
	c.Next()
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

func isOperator(c *gin.Context) bool { return c.GetBool(ctxOperator) }

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

// keyCacheTTL bounds how long a looked-up API key is trusted without asking the database again.
const keyCacheTTL = 30 * time.Second

type cachedApp struct {
	app     db.App
	expires time.Time
}

// keyCache remembers recent API key lookups: one database round trip per key and TTL instead of
// one per request.
type keyCache struct {
	mu      sync.Mutex
	entries map[string]cachedApp
}

func (s *Server) appByKey(ctx context.Context, key string) (db.App, error) {
	h := hashKey(key)
	now := time.Now()
	s.keys.mu.Lock()
	e, ok := s.keys.entries[string(h)]
	s.keys.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.app, nil
	}
	app, err := s.Repo.AppByKeyHash(ctx, h)
	if err != nil {
		return db.App{}, err
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	if s.keys.entries == nil || len(s.keys.entries) > 10_000 {
		s.keys.entries = map[string]cachedApp{}
	}
	s.keys.entries[string(h)] = cachedApp{app: app, expires: now.Add(keyCacheTTL)}
	return app, nil
}

// forget drops one key hash from the cache.
func (k *keyCache) forget(hash string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.entries, hash)
}

// forgetAll drops every cached key.
func (k *keyCache) forgetAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.entries = nil
}
