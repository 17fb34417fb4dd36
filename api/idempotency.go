package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/db"
)

// maxIdempotencyKey bounds the Idempotency-Key header (the IETF draft sets no limit; Stripe 255).
const maxIdempotencyKey = 255

// idempotent makes a creating POST safe to retry (Idempotency-Key, IETF draft; Svix, Stripe):
// the first answer to a key is kept 24 h per caller, and the same request with the same key gets
// it again with Idempotent-Replayed: true, without running again; the key with another request is
// refused with 422, and while the first request runs, with 409. An answer of 5xx is not kept: the
// request may be retried with its key. Without the header nothing changes.
func (s *Server) idempotent(c *gin.Context) {
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		c.Next()
		return
	}
	if len(key) > maxIdempotencyKey {
		problem(c, http.StatusBadRequest, "Idempotency-Key: at most 255 characters")
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	h := sha256.New()
	h.Write([]byte(c.Request.Method + " " + c.Request.URL.RequestURI() + "\n"))
	h.Write(body)
	owner := "operator"
	if app, ok := c.Get(ctxApp); ok {
		owner = app.(db.App).ID
	}
	ctx := c.Request.Context()
	claim, err := s.Repo.ClaimIdempotencyKey(ctx, owner, key, h.Sum(nil))
	switch {
	case err != nil:
		s.fail(c, err)
		return
	case claim.Mismatch:
		problem(c, http.StatusUnprocessableEntity, "Idempotency-Key was used with another request: use a new key for a new request")
		return
	case claim.InProgress:
		c.Header("Retry-After", "1")
		problem(c, http.StatusConflict, "a request with this Idempotency-Key is still being processed; retry shortly")
		return
	case claim.Response != nil:
		for k, vs := range claim.Response.Header {
			for _, v := range vs {
				c.Writer.Header().Add(k, v)
			}
		}
		c.Header("Idempotent-Replayed", "true")
		c.Data(claim.Response.Status, claim.Response.Header.Get("Content-Type"), claim.Response.Body)
		c.Abort()
		return
	}
	rec := &recordingWriter{ResponseWriter: c.Writer}
	c.Writer = rec
	c.Next()
	// The request's context may be gone (the client left): the answer is kept all the same.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if status := rec.Status(); status >= 500 {
		err = s.Repo.ReleaseIdempotencyKey(sctx, owner, key)
	} else {
		kept := http.Header{}
		for _, k := range []string{"Content-Type", "Location", "Idempotent-Replayed"} {
			if v := rec.Header().Get(k); v != "" {
				kept.Set(k, v)
			}
		}
		err = s.Repo.CompleteIdempotencyKey(sctx, owner, key, db.StoredResponse{Status: status, Header: kept, Body: rec.body.Bytes()})
	}
	if err != nil {
		// The answer is sent; a retry with the key runs again once the claim goes stale.
		s.Log.Error("idempotency key not recorded", "owner", owner, "error", err)
	}
}

// recordingWriter keeps a copy of the answer's body.
type recordingWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) WriteString(s string) (int, error) {
	w.body.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}
