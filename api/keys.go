package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/background"
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

// Invalidations says what this server drops when another process revokes a key
// (db.KeysChannel, with the key's hash in hex) or changes an app's registered events
// (db.SchemasChannel, with the app's id), and what it drops when notifications may have been
// missed (everything): the handlers of background.Listen.
func (s *Server) Invalidations() background.Handlers {
	return background.Handlers{
		Channels: map[string]func(string){
			db.KeysChannel: func(extra string) {
				h, err := hex.DecodeString(extra)
				if err != nil {
					s.keys.forgetAll()
					return
				}
				s.keys.forget(string(h))
			},
			db.SchemasChannel: s.schemas.forget,
		},
		Lost: func() {
			s.keys.forgetAll()
			s.schemas.forget("")
		},
	}
}
