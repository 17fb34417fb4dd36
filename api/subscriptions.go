package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/usecase"
)

// createSubscription registers a callback URL. It either lists event types of the caller's own
// events, or subscribes to another app's registered event (appId, topic, eventName), which needs one
// of that publisher's permissions. The signing secret is returned once.
func (s *Server) createSubscription(c *gin.Context) {
	var req usecase.NewSubscription
	if !bind(c, &req) {
		return
	}
	got, err := s.cases().CreateSubscription(c.Request.Context(), callerOf(c), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := subscriptionView(got.Subscription)
	if got.Secret != "" {
		out["secret"] = got.Secret // the only time it is shown; a v1a subscription shows its public key
	}
	deprecationWarning(c, out, got.Registered) // subscribing to a deprecated event works, with a warning
	data(c, http.StatusCreated, out)
}

// subscriptionView is the public shape of a subscription: never its secrets.
func subscriptionView(s db.Subscription) gin.H {
	v := gin.H{
		"id": s.ID, "appId": s.AppID, "publisherAppId": s.PublisherAppID, "url": s.URL, "eventTypes": s.EventTypes,
		"contactEmail": s.ContactEmail, "active": s.Active, "consecutiveFailures": s.ConsecutiveFailures,
		"retryPolicy": s.RetryPolicy, "callbackKeySet": s.CallbackKey.Valid, "createdAt": s.CreatedAt, "updatedAt": s.UpdatedAt,
	}
	if s.FilterLogic.Valid {
		v["filterLogic"] = s.FilterLogic.JSONText
	}
	if s.DisabledReason != "" {
		v["disabledReason"] = s.DisabledReason
	}
	if s.FilterError != "" && s.FilterErrorAt.Valid {
		v["filterError"], v["filterErrorAt"] = s.FilterError, s.FilterErrorAt.Time
	}
	if s.TimeoutMS != nil {
		v["timeoutMs"] = *s.TimeoutMS
	}
	v["signatureScheme"] = usecase.SchemeHMAC
	if signature.IsSigningKey(s.Secret) {
		// Public keys are not secrets: shown on every read, the previous one during a rotation.
		v["signatureScheme"] = usecase.SchemeEd25519
		v["publicKey"], _ = signature.PublicKey(s.Secret)
		if s.PreviousSecret.Valid && s.PreviousSecretUntil.Time.After(time.Now()) && signature.IsSigningKey(s.PreviousSecret.String) {
			v["previousPublicKey"], _ = signature.PublicKey(s.PreviousSecret.String)
		}
	}
	if s.RateLimit.Valid {
		v["rateLimit"] = s.RateLimit.Float64
	}
	if s.MaxInFlight.Valid {
		v["maxInFlight"] = s.MaxInFlight.Int32
	}
	if s.PausedUntil.Valid && s.PausedUntil.Time.After(time.Now()) {
		v["pausedUntil"] = s.PausedUntil.Time
	}
	return v
}

func (s *Server) listSubscriptions(c *gin.Context) {
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	subs, next, err := s.cases().ListSubscriptions(c.Request.Context(), callerOf(c), c.Query("page"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(subs))
	for _, sub := range subs {
		out = append(out, subscriptionView(sub))
	}
	data(c, http.StatusOK, gin.H{"subscriptions": out, "meta": pageMeta(next)})
}

func (s *Server) getSubscription(c *gin.Context) {
	sub, err := s.cases().GetSubscription(c.Request.Context(), callerOf(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, subscriptionView(sub))
}

func (s *Server) enableSubscription(c *gin.Context)  { s.setActive(c, true) }
func (s *Server) disableSubscription(c *gin.Context) { s.setActive(c, false) }

func (s *Server) setActive(c *gin.Context, active bool) {
	sub, err := s.cases().SetSubscriptionActive(c.Request.Context(), callerOf(c), c.Param("id"), active)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, subscriptionView(sub))
}

// deleteSubscription removes a subscription and cancels its deliveries that are still retrying.
func (s *Server) deleteSubscription(c *gin.Context) {
	if err := s.cases().DeleteSubscription(c.Request.Context(), callerOf(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// updateSubscription changes the fields the request names and leaves the others as they are.
func (s *Server) updateSubscription(c *gin.Context) {
	var req usecase.SubscriptionChange
	if !bind(c, &req) {
		return
	}
	got, err := s.cases().UpdateSubscription(c.Request.Context(), callerOf(c), c.Param("id"), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, subscriptionView(got))
}

type rotateRequest struct {
	Secret  string `json:"secret"`
	GraceMS *int64 `json:"graceMs"`
}

// rotateSecret gives a subscription a new secret; the old one keeps signing for the grace period
// (default 24 h), so both signatures are sent meanwhile.
func (s *Server) rotateSecret(c *gin.Context) {
	var req rotateRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	var grace *time.Duration
	if req.GraceMS != nil {
		g := time.Duration(*req.GraceMS) * time.Millisecond
		if *req.GraceMS > int64(usecase.MaxRotationGrace/time.Millisecond) {
			g = usecase.MaxRotationGrace + 1 // refused as too long, without overflowing
		}
		grace = &g
	}
	sub, err := s.cases().RotateSecret(c.Request.Context(), callerOf(c), c.Param("id"), req.Secret, grace)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := subscriptionView(sub.Subscription)
	if sub.Secret != "" {
		v["secret"] = sub.Secret
	}
	v["previousSecretValidUntil"] = sub.PreviousSecretUntil.Time
	data(c, http.StatusOK, v)
}
