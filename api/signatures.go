package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/signature"
)

type verifyRequest struct {
	SubscriptionID string            `json:"subscriptionId"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
}

// verifySignature (POST /v1/signatures/verify) tells a receiver whether a request it got is
// authentic: signed by one of the subscription's secrets, within the timestamp tolerance.
func (s *Server) verifySignature(c *gin.Context) {
	var req verifyRequest
	if !bind(c, &req) {
		return
	}
	if req.SubscriptionID == "" {
		problem(c, http.StatusBadRequest, "subscriptionId: required")
		return
	}
	sub, err := s.cases().GetSubscription(c.Request.Context(), callerOf(c), req.SubscriptionID)
	if err != nil {
		s.fail(c, err)
		return
	}
	h := http.Header{}
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	var verr error
	for _, sec := range sub.Secrets(time.Now()) {
		if verr = (signature.Verifier{Secret: sec}).Verify(h, []byte(req.Body)); verr == nil {
			break
		}
	}
	if verr != nil {
		data(c, http.StatusOK, gin.H{"valid": false, "reason": verr.Error()})
		return
	}
	data(c, http.StatusOK, gin.H{"valid": true})
}
