package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lib/pq"

	"github.com/hookd/hookd/db"
)

func newKeyID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return "key_" + hex.EncodeToString(b)
}

// keyOwner returns the app whose keys the path names if the caller may manage them: the app
// itself or the operator.
func keyOwner(c *gin.Context) (string, bool) {
	return appOwner(c, "an app manages only its own API keys")
}

// appOwner returns the app the path names if the caller is that app or the operator; otherwise it
// answers 403 with refusal.
func appOwner(c *gin.Context, refusal string) (string, bool) {
	id := c.Param("id")
	if isOperator(c) {
		return id, true
	}
	app, ok := caller(c)
	if !ok {
		return "", false
	}
	if app.ID != id {
		problem(c, http.StatusForbidden, refusal)
		return "", false
	}
	return id, true
}

func keyView(k db.APIKey) gin.H {
	v := gin.H{"id": k.ID, "appId": k.AppID, "createdAt": k.CreatedAt}
	if k.RevokedAt.Valid {
		v["revokedAt"] = k.RevokedAt.Time
	}
	return v
}

// createKey issues an additional API key, up to db.MaxActiveKeys active ones (409 past it); the
// key itself is shown only in this answer.
func (s *Server) createKey(c *gin.Context) {
	appID, ok := keyOwner(c)
	if !ok {
		return
	}
	key, err := newKey()
	if err != nil {
		s.fail(c, err)
		return
	}
	k, err := s.Repo.AddAPIKey(c.Request.Context(), appID, newKeyID(), hashKey(key))
	if errors.Is(err, db.ErrTooManyKeys) {
		problem(c, http.StatusConflict, fmt.Sprintf("this app has %d active API keys, the most it may have: revoke one first "+
			"(its rate limit is the app's, shared by all its keys)", db.MaxActiveKeys))
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.keys.added(string(k.KeyHash))
	v := keyView(k)
	v["apiKey"] = key
	data(c, http.StatusCreated, v)
}

// listKeys lists an app's keys (never the keys themselves).
func (s *Server) listKeys(c *gin.Context) {
	appID, ok := keyOwner(c)
	if !ok {
		return
	}
	ks, err := s.Repo.APIKeys(c.Request.Context(), appID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyView(k))
	}
	data(c, http.StatusOK, gin.H{"keys": out})
}

// revokeKey revokes a key at once: this process forgets it now, the others when PostgreSQL's
// notification reaches them (see ForgetRevokedKeys).
func (s *Server) revokeKey(c *gin.Context) {
	appID, ok := keyOwner(c)
	if !ok {
		return
	}
	k, err := s.Repo.RevokeAPIKey(c.Request.Context(), appID, c.Param("keyId"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.keys.forget(string(k.KeyHash))
	data(c, http.StatusOK, keyView(k))
}

// ForgetRevokedKeys listens for revoked keys (db.KeysChannel) and drops them from this process's
// key cache, so a key revoked through any API process stops working everywhere at once. On the
// same connection it listens for changed registered events (db.SchemasChannel, with the app's
// id) and drops that app's compiled schemas. When the connection drops, notifications may have
// been missed: both caches are dropped whole then. It runs until ctx ends.
func (s *Server) ForgetRevokedKeys(ctx context.Context, dsn string) error {
	l := pq.NewListener(dsn, time.Second, time.Minute, func(ev pq.ListenerEventType, err error) {
		if ev == pq.ListenerEventReconnected || ev == pq.ListenerEventConnectionAttemptFailed {
			s.keys.forgetAll()
			s.schemas.forget("")
		}
		if err != nil {
			s.Log.Warn("key revocation listener", "error", err)
		}
	})
	defer l.Close()
	if err := l.Listen(db.KeysChannel); err != nil {
		return err
	}
	if err := l.Listen(db.SchemasChannel); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: what was sent meanwhile is lost
				s.keys.forgetAll()
				s.schemas.forget("")
				continue
			}
			if n.Channel == db.SchemasChannel {
				s.schemas.forget(n.Extra)
				continue
			}
			h, err := hex.DecodeString(n.Extra)
			if err != nil {
				s.keys.forgetAll()
				continue
			}
			s.keys.forget(string(h))
		case <-time.After(time.Minute):
			if err := l.Ping(); err != nil {
				s.Log.Warn("key revocation listener", "error", err)
			}
		}
	}
}
