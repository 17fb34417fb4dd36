package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
)

// authServer is a Server whose key lookups are counted queries against keys (hash → app), with a
// route behind authenticate that answers 204.
func authServer(t *testing.T, cfg config.Config, keys map[string]db.App) (*Server, http.Handler, *atomic.Int64) {
	t.Helper()
	s := &Server{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	queries := &atomic.Int64{}
	s.keys.query = func(_ context.Context, h []byte) (db.App, error) {
		queries.Add(1)
		if app, ok := keys[string(h)]; ok {
			return app, nil
		}
		return db.App{}, db.ErrNotFound
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/x", s.authenticate, func(c *gin.Context) { c.Status(http.StatusNoContent) })
	return s, r, queries
}

func get(h http.Handler, key, from string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.RemoteAddr = from
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// A flood of invalid keys costs the database at most the failed-authentication burst: distinct
// keys from one address are refused with 429 past it (however many run at once), one key tried
// from many addresses is asked about once. A valid key is not refused meanwhile once cached, and
// a valid key's lookup does not spend the address's budget.
func TestInvalidKeysAreLimitedAndCostNoQueries(t *testing.T) {
	good := "hk_good"
	_, h, queries := authServer(t, config.Config{}, map[string]db.App{string(hashKey(good)): {ID: "app_1"}})
	if w := get(h, good, "203.0.113.7:1000"); w.Code != http.StatusNoContent {
		t.Fatalf("valid key: %d %s", w.Code, w.Body)
	}
	queries.Store(0)

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := get(h, fmt.Sprintf("hk_bad%04d", i), fmt.Sprintf("203.0.113.7:%d", 2000+i))
			mu.Lock()
			codes[w.Code]++
			mu.Unlock()
			if w.Code == http.StatusTooManyRequests && (w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Retry-After") == "") {
				t.Errorf("429 without problem+json or Retry-After: %v %s", w.Header(), w.Body)
			}
		}()
	}
	wg.Wait()
	t.Logf("500 invalid keys at once from one address: %d queries, answers %v", queries.Load(), codes)
	if n := queries.Load(); n > authFailureBurst+2 {
		t.Errorf("500 invalid keys from one address cost %d queries, want at most %d", n, authFailureBurst+2)
	}
	if codes[http.StatusTooManyRequests] < 400 || codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != 500 {
		t.Errorf("answers %v", codes)
	}
	if w := get(h, good, "203.0.113.7:9999"); w.Code != http.StatusNoContent {
		t.Errorf("cached valid key from the flooding address: %d %s", w.Code, w.Body)
	}

	// One invalid key from 200 addresses (IPv4 and IPv6 /64s): one query.
	queries.Store(0)
	for i := range 100 {
		if w := get(h, "hk_stale", fmt.Sprintf("198.51.100.%d:1", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("stale key: %d", w.Code)
		}
		if w := get(h, "hk_stale", fmt.Sprintf("[2001:db8:%x::1]:1", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("stale key over IPv6: %d", w.Code)
		}
	}
	if n := queries.Load(); n != 1 {
		t.Errorf("one invalid key, tried 200 times: %d queries", n)
	}

	// Addresses of one IPv6 /64 share their budget.
	for i := range authFailureBurst {
		get(h, fmt.Sprintf("hk_v6bad%d", i), fmt.Sprintf("[2001:db8:ffff:1::%x]:1", i+1))
	}
	if w := get(h, "hk_v6bad-last", "[2001:db8:ffff:1::ffff]:1"); w.Code != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64 past its budget: %d", w.Code)
	}
}

// A valid key's lookup hands its token back: an address can authenticate many fresh keys.
func TestValidLookupsDoNotSpendTheFailureBudget(t *testing.T) {
	keys := map[string]db.App{}
	for i := range 3 * authFailureBurst {
		keys[string(hashKey(fmt.Sprintf("hk_k%d", i)))] = db.App{ID: fmt.Sprintf("app_%d", i)}
	}
	_, h, queries := authServer(t, config.Config{}, keys)
	for i := range 3 * authFailureBurst {
		if w := get(h, fmt.Sprintf("hk_k%d", i), "192.0.2.1:1"); w.Code != http.StatusNoContent {
			t.Fatalf("valid key %d: %d %s", i, w.Code, w.Body)
		}
	}
	if n := queries.Load(); n != 3*authFailureBurst {
		t.Errorf("%d queries", n)
	}
}

// A lookup that read a key before its revocation and caches it after the revocation reached this
// process would keep the revoked key working for the cache's TTL. The revocation is made to land
// exactly between the lookup's query and its insert.
func TestLookupRacingRevocationDoesNotCacheTheKey(t *testing.T) {
	for name, revoke := range map[string]func(k *keyCache, h string){
		"notification": func(k *keyCache, h string) { k.forget(h) },
		"reconnect":    func(k *keyCache, _ string) { k.forgetAll() },
	} {
		t.Run(name, func(t *testing.T) {
			var k keyCache
			h := hashKey("hk_revoked")
			revoked := false
			k.query = func(context.Context, []byte) (db.App, error) {
				if revoked {
					return db.App{}, db.ErrNotFound
				}
				return db.App{ID: "app_1"}, nil
			}
			k.afterQuery = func() {
				if !revoked {
					revoked = true // committed in the database, and its notification handled here
					revoke(&k, string(h))
				}
			}
			if app, err := k.lookup(context.Background(), h, nil); err != nil || app.ID != "app_1" {
				t.Fatalf("lookup before the revocation: %v %v", app, err)
			}
			if _, err := k.lookup(context.Background(), h, nil); err != db.ErrNotFound {
				t.Errorf("after the revocation the key still works (cached by the racing lookup): %v", err)
			}
			if _, ok := k.cached(h); ok {
				t.Error("revoked key cached")
			}
		})
	}
}

// A key found is cached, one not found too (briefly), and a forget drops only what it names.
func TestKeyCache(t *testing.T) {
	var k keyCache
	n := 0
	k.query = func(_ context.Context, h []byte) (db.App, error) {
		n++
		if string(h) == string(hashKey("hk_a")) || string(h) == string(hashKey("hk_b")) {
			return db.App{ID: "app"}, nil
		}
		return db.App{}, db.ErrNotFound
	}
	ctx := context.Background()
	for range 3 {
		k.lookup(ctx, hashKey("hk_a"), nil)
		k.lookup(ctx, hashKey("hk_b"), nil)
		k.lookup(ctx, hashKey("hk_x"), nil)
	}
	if n != 3 {
		t.Fatalf("%d queries for 3 keys looked up 3 times each", n)
	}
	k.forget(string(hashKey("hk_a")))
	if _, ok := k.cached(hashKey("hk_a")); ok {
		t.Error("forgotten key still cached")
	}
	if _, ok := k.cached(hashKey("hk_b")); !ok {
		t.Error("forgetting one key dropped another")
	}
}

// A fresh valid key used by many requests at once (a client's pool right after it got the key)
// is looked up once: concurrent lookups of one key share a query and spend at most one token of
// the address's failed-authentication budget, so none of them is refused with 429.
func TestConcurrentLookupsOfOneKeyShareAQuery(t *testing.T) {
	good := "hk_fresh"
	s, h, queries := authServer(t, config.Config{}, map[string]db.App{string(hashKey(good)): {ID: "app_1"}})
	release := make(chan struct{})
	query := s.keys.query
	s.keys.query = func(ctx context.Context, hash []byte) (db.App, error) {
		<-release // every request arrives while the first lookup is under way
		return query(ctx, hash)
	}
	const n = 4 * authFailureBurst
	var wg, arrived sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		arrived.Add(1)
		go func() {
			defer wg.Done()
			arrived.Done()
			codes[i] = get(h, good, fmt.Sprintf("203.0.113.9:%d", 3000+i)).Code
		}()
	}
	arrived.Wait()
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusNoContent {
			t.Errorf("request %d of %d with a fresh valid key: %d", i, n, c)
		}
	}
	if q := queries.Load(); q > 2 {
		t.Errorf("%d concurrent requests with one key made %d queries, want 1", n, q)
	}
}
