package api

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/lib/pq"
	"go.temporal.io/api/serviceerror"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/workflows"
)

// MaxEventTypes bounds the event types one subscription may list.
const MaxEventTypes = 50

type retryPolicyRequest struct {
	InitialIntervalMS  *int64   `json:"initialIntervalMs"`
	BackoffCoefficient *float64 `json:"backoffCoefficient"`
	MaxIntervalMS      *int64   `json:"maxIntervalMs"`
	MaxAttempts        *int32   `json:"maxAttempts"`
	MaxDurationMS      *int64   `json:"maxDurationMs"`
}

type subscriptionRequest struct {
	URL          string          `json:"url"`
	EventTypes   []string        `json:"eventTypes"`
	AppID        string          `json:"appId"`
	Topic        string          `json:"topic"`
	EventName    string          `json:"eventName"`
	FilterLogic  json.RawMessage `json:"filterLogic"`
	ContactEmail string          `json:"contactEmail"`
	Secret       string          `json:"secret"`
	// SignatureScheme: "v1" (HMAC-SHA256 with a shared secret, the default) or "v1a" (ed25519:
	// hookd keeps the signing key, the subscriber gets the public key).
	SignatureScheme string              `json:"signatureScheme"`
	CallbackKey     string              `json:"callbackKey"`
	RetryPolicy     *retryPolicyRequest `json:"retryPolicy"`
	TimeoutMS       *int64              `json:"timeoutMs"`
	RateLimit       *float64            `json:"rateLimit"`
	MaxInFlight     *int32              `json:"maxInFlight"`
}

// checkThrottle says what is wrong with a subscription's limits, or "".
func checkThrottle(rate *float64, inFlight *int32) string {
	if rate != nil && (*rate <= 0 || *rate > 10000) {
		return "rateLimit: deliveries per second, more than 0 and at most 10000"
	}
	if inFlight != nil && (*inFlight < 1 || *inFlight > 1000) {
		return "maxInFlight: from 1 to 1000"
	}
	return ""
}

// throttleOf is the stored form of a subscription's limits (nil: none).
func throttleOf(rate *float64, inFlight *int32) db.Throttle {
	var t db.Throttle
	if rate != nil {
		t.RateLimit = sql.NullFloat64{Float64: *rate, Valid: true}
	}
	if inFlight != nil {
		t.MaxInFlight = sql.NullInt32{Int32: *inFlight, Valid: true}
	}
	return t
}

// optional is a PATCH field that may be left out, set, or null (removed).
type optional[T any] struct {
	Set   bool
	Value *T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		return nil
	}
	o.Value = new(T)
	return json.Unmarshal(b, o.Value)
}

func (r *retryPolicyRequest) validate() error {
	if r == nil {
		return nil
	}
	pos := func(name string, v *int64, lo, hi int64) error {
		if v != nil && (*v < lo || *v > hi) {
			return fmt.Errorf("retryPolicy.%s: from %d to %d", name, lo, hi)
		}
		return nil
	}
	day := int64(7 * 24 * time.Hour / time.Millisecond)
	if err := errors.Join(pos("initialIntervalMs", r.InitialIntervalMS, 1, day), pos("maxIntervalMs", r.MaxIntervalMS, 1, day),
		pos("maxDurationMs", r.MaxDurationMS, 1, 30*day)); err != nil {
		return err
	}
	if r.BackoffCoefficient != nil && (*r.BackoffCoefficient < 1 || *r.BackoffCoefficient > 10) {
		return errors.New("retryPolicy.backoffCoefficient: from 1 to 10")
	}
	if r.MaxAttempts != nil && (*r.MaxAttempts < 1 || *r.MaxAttempts > 1000) {
		return errors.New("retryPolicy.maxAttempts: from 1 to 1000")
	}
	return nil
}

// createSubscription registers a callback URL. It either lists event types of the caller's own
// events, or subscribes to another app's registered event (appId, topic, eventName), which needs one
// of that publisher's permissions. The signing secret is returned once.
func (s *Server) createSubscription(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req subscriptionRequest
	if !bind(c, &req) {
		return
	}
	if !s.validTarget(c, "url", req.URL) {
		return
	}
	if err := req.RetryPolicy.validate(); err != nil {
		problem(c, http.StatusBadRequest, err.Error())
		return
	}
	if req.TimeoutMS != nil {
		if msg := checkTimeout(*req.TimeoutMS); msg != "" {
			problem(c, http.StatusBadRequest, msg)
			return
		}
	}
	if msg := checkThrottle(req.RateLimit, req.MaxInFlight); msg != "" {
		problem(c, http.StatusBadRequest, msg)
		return
	}
	if req.ContactEmail != "" && !validEmail(req.ContactEmail) {
		problem(c, http.StatusBadRequest, "contactEmail: not an e-mail address")
		return
	}
	switch req.SignatureScheme {
	case "", schemeHMAC:
		if req.Secret, ok = s.secretOrNew(c, req.Secret); !ok {
			return
		}
	case schemeEd25519:
		if req.Secret != "" {
			problem(c, http.StatusBadRequest, "secret: not with signatureScheme v1a (hookd makes the key pair and shows the public key)")
			return
		}
		if req.Secret, ok = s.newSigningKey(c); !ok {
			return
		}
	default:
		problem(c, http.StatusBadRequest, `signatureScheme: "v1" (HMAC-SHA256, the default) or "v1a" (ed25519)`)
		return
	}
	if len(req.CallbackKey) > 512 {
		problem(c, http.StatusBadRequest, "callbackKey: at most 512 characters")
		return
	}
	sub := db.Subscription{
		ID: "sub_" + uuid.NewString(), AppID: app.ID, PublisherAppID: app.ID, URL: req.URL, Secret: req.Secret,
		ContactEmail: req.ContactEmail, EventTypes: pq.StringArray{},
	}
	if req.CallbackKey != "" {
		sub.CallbackKey = sql.NullString{String: req.CallbackKey, Valid: true}
	}
	var err error
	if sub.FilterLogic, err = compiledFilter(req.FilterLogic); err != nil {
		badRequest(c, fmt.Errorf("filterLogic: %w", err))
		return
	}
	if rp := req.RetryPolicy; rp != nil {
		sub.RetryPolicy = db.RetryPolicy{InitialIntervalMS: rp.InitialIntervalMS, BackoffCoefficient: rp.BackoffCoefficient,
			MaxIntervalMS: rp.MaxIntervalMS, MaxAttempts: rp.MaxAttempts, MaxDurationMS: rp.MaxDurationMS}
	}
	sub.TimeoutMS = req.TimeoutMS
	sub.Throttle = throttleOf(req.RateLimit, req.MaxInFlight)

	var registered db.RegisteredEvent // the registered event subscribed to, if any
	switch {
	case req.AppID != "" || req.EventName != "":
		if len(req.EventTypes) > 0 {
			problem(c, http.StatusBadRequest, "eventTypes: give either eventTypes (your own events) or appId+topic+eventName, not both")
			return
		}
		if req.AppID == "" || req.EventName == "" || req.Topic == "" {
			problem(c, http.StatusBadRequest, "appId, topic and eventName: all three name a registered event")
			return
		}
		if !s.topicKnown(req.Topic) {
			problem(c, http.StatusNotFound, fmt.Sprintf("unknown topic %q", req.Topic))
			return
		}
		pub, err := s.Repo.GetApp(c.Request.Context(), req.AppID)
		if errors.Is(err, db.ErrNotFound) {
			problem(c, http.StatusNotFound, "no publisher app "+req.AppID)
			return
		} else if err != nil {
			s.fail(c, err)
			return
		}
		ev, err := s.Repo.GetRegisteredEvent(c.Request.Context(), pub.ID, req.Topic, req.EventName)
		if errors.Is(err, db.ErrNotFound) {
			problem(c, http.StatusNotFound, fmt.Sprintf("app %s has no event %q on topic %q", pub.ID, req.EventName, req.Topic))
			return
		} else if err != nil {
			s.fail(c, err)
			return
		}
		if pub.ID != app.ID && !sharesPermission(app.Permissions, pub.Permissions) {
			problem(c, http.StatusForbidden, fmt.Sprintf("subscribing to %s's events needs one of its permissions: %v", pub.Name, []string(pub.Permissions)))
			return
		}
		sub.PublisherAppID = pub.ID
		sub.RegisteredEventID = sql.NullInt64{Int64: ev.ID, Valid: true}
		sub.EventTypes = pq.StringArray{ev.EventType}
		registered = ev
	default:
		if len(req.EventTypes) == 0 {
			problem(c, http.StatusBadRequest, "eventTypes: list at least one event type (or \"*\"), or subscribe to a registered event with appId+topic+eventName")
			return
		}
		if msg := checkEventTypes(req.EventTypes); msg != "" {
			problem(c, http.StatusBadRequest, msg)
			return
		}
		sub.EventTypes = req.EventTypes
	}
	got, err := s.Repo.CreateSubscription(c.Request.Context(), sub)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := subscriptionView(got)
	if !signature.IsSigningKey(got.Secret) {
		out["secret"] = got.Secret // the only time it is shown; a v1a subscription shows its public key
	}
	deprecationWarning(c, out, registered) // subscribing to a deprecated event works, with a warning
	data(c, http.StatusCreated, out)
}

func sharesPermission(have, need []string) bool {
	if len(need) == 0 {
		return true
	}
	for _, h := range have {
		for _, n := range need {
			if h == n {
				return true
			}
		}
	}
	return false
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
	v["signatureScheme"] = schemeHMAC
	if signature.IsSigningKey(s.Secret) {
		// Public keys are not secrets: shown on every read, the previous one during a rotation.
		v["signatureScheme"] = schemeEd25519
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
	app, ok := caller(c)
	if !ok {
		return
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	subs, err := s.Repo.ListSubscriptions(c.Request.Context(), app.ID, c.Query("page"), limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	subs, next := trimPage(subs, limit, func(sub db.Subscription) string { return sub.ID })
	out := make([]gin.H, 0, len(subs))
	for _, sub := range subs {
		out = append(out, subscriptionView(sub))
	}
	data(c, http.StatusOK, gin.H{"subscriptions": out, "meta": pageMeta(next)})
}

func (s *Server) getSubscription(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	sub, err := s.Repo.GetSubscription(c.Request.Context(), db.OwnedBy(app.ID), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, subscriptionView(sub))
}

func (s *Server) enableSubscription(c *gin.Context)  { s.setActive(c, true, "") }
func (s *Server) disableSubscription(c *gin.Context) { s.setActive(c, false, "disabled by its owner") }

func (s *Server) setActive(c *gin.Context, active bool, reason string) {
	app, ok := caller(c)
	if !ok {
		return
	}
	sub, changed, err := s.Repo.SetSubscriptionActive(c.Request.Context(), db.OwnedBy(app.ID), c.Param("id"), active, reason)
	if errors.Is(err, db.ErrEventRemoved) {
		problem(c, http.StatusConflict, db.ErrEventRemoved.Error()+
			": this subscription cannot be enabled again; subscribe to an event the publisher offers (GET /v1/apps)")
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if changed {
		typ := activities.OpSubscriptionDisabled
		if active {
			typ = activities.OpSubscriptionEnabled
		}
		s.emit(c.Request.Context(), sub.AppID, typ, activities.SubscriptionChangeKey(sub), activities.SubscriptionData(sub, "owner"))
	}
	data(c, http.StatusOK, subscriptionView(sub))
}

// Signature schemes, named as Standard Webhooks versions them.
const (
	schemeHMAC    = "v1"
	schemeEd25519 = "v1a"
)

// newSigningKey makes an ed25519 signing key (whsk_) for a v1a subscription.
func (s *Server) newSigningKey(c *gin.Context) (string, bool) {
	sk, _, err := signature.NewSigningKey()
	if err != nil {
		s.fail(c, err)
		return "", false
	}
	return sk, true
}

// secretOrNew checks a signing secret the caller chose, or makes one when none was given.
func (s *Server) secretOrNew(c *gin.Context, given string) (string, bool) {
	if given == "" {
		sec, err := signature.NewSecret()
		if err != nil {
			s.fail(c, err)
			return "", false
		}
		return sec, true
	}
	if !signature.ValidSecret(given) {
		problem(c, http.StatusBadRequest, "secret: must be whsec_ followed by base64, or left out to have one made")
		return "", false
	}
	return given, true
}

// deleteSubscription removes a subscription and cancels its deliveries that are still retrying.
func (s *Server) deleteSubscription(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	pending, err := s.Repo.DeleteSubscription(c.Request.Context(), app.ID, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, wf := range pending {
		// Best effort: a delivery whose workflow has not started yet (still on its first attempt)
		// finds the subscription inactive at its next attempt and stops there.
		err := s.Engine.SignalWorkflow(c.Request.Context(), wf, "", workflows.SignalCancel, workflows.SignalPayload{Reason: "subscription deleted"})
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			s.Log.Warn("cancel delivery of deleted subscription", "workflow_id", wf, "error", err)
		}
	}
	c.Status(http.StatusNoContent)
}

type updateSubscriptionRequest struct {
	URL          *string             `json:"url"`
	EventTypes   []string            `json:"eventTypes"`
	FilterLogic  json.RawMessage     `json:"filterLogic"` // null removes the filter
	ContactEmail *string             `json:"contactEmail"`
	CallbackKey  *string             `json:"callbackKey"` // "" removes the key
	RetryPolicy  *retryPolicyRequest `json:"retryPolicy"` // replaces the whole policy
	TimeoutMS    *int64              `json:"timeoutMs"`
	RateLimit    optional[float64]   `json:"rateLimit"`   // null removes the limit
	MaxInFlight  optional[int32]     `json:"maxInFlight"` // null removes the limit
}

// updateSubscription changes the fields the request names and leaves the others as they are.
func (s *Server) updateSubscription(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req updateSubscriptionRequest
	if !bind(c, &req) {
		return
	}
	sub, err := s.Repo.GetSubscription(c.Request.Context(), db.OwnedBy(app.ID), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if req.URL != nil {
		if !s.validTarget(c, "url", *req.URL) {
			return
		}
		sub.URL = *req.URL
	}
	if req.EventTypes != nil {
		if sub.RegisteredEventID.Valid {
			problem(c, http.StatusBadRequest, "eventTypes: a subscription to a registered event follows that event's type")
			return
		}
		if len(req.EventTypes) == 0 {
			problem(c, http.StatusBadRequest, "eventTypes: list at least one event type (or \"*\")")
			return
		}
		if msg := checkEventTypes(req.EventTypes); msg != "" {
			problem(c, http.StatusBadRequest, msg)
			return
		}
		sub.EventTypes = req.EventTypes
	}
	if req.FilterLogic != nil { // left out: unchanged; null: removed
		var err error
		if sub.FilterLogic, err = compiledFilter(req.FilterLogic); err != nil {
			badRequest(c, fmt.Errorf("filterLogic: %w", err))
			return
		}
	}
	if req.ContactEmail != nil {
		if *req.ContactEmail != "" && !validEmail(*req.ContactEmail) {
			problem(c, http.StatusBadRequest, "contactEmail: not an e-mail address")
			return
		}
		sub.ContactEmail = *req.ContactEmail
	}
	if req.CallbackKey != nil {
		if len(*req.CallbackKey) > 512 {
			problem(c, http.StatusBadRequest, "callbackKey: at most 512 characters")
			return
		}
		sub.CallbackKey = sql.NullString{String: *req.CallbackKey, Valid: *req.CallbackKey != ""}
	}
	if req.RetryPolicy != nil {
		if err := req.RetryPolicy.validate(); err != nil {
			problem(c, http.StatusBadRequest, err.Error())
			return
		}
		rp := req.RetryPolicy
		sub.RetryPolicy = db.RetryPolicy{InitialIntervalMS: rp.InitialIntervalMS, BackoffCoefficient: rp.BackoffCoefficient,
			MaxIntervalMS: rp.MaxIntervalMS, MaxAttempts: rp.MaxAttempts, MaxDurationMS: rp.MaxDurationMS, TimeoutMS: sub.TimeoutMS}
	}
	if req.TimeoutMS != nil {
		if msg := checkTimeout(*req.TimeoutMS); msg != "" {
			problem(c, http.StatusBadRequest, msg)
			return
		}
		sub.TimeoutMS = req.TimeoutMS
	}
	if msg := checkThrottle(req.RateLimit.Value, req.MaxInFlight.Value); msg != "" {
		problem(c, http.StatusBadRequest, msg)
		return
	}
	if req.RateLimit.Set {
		sub.RateLimit = throttleOf(req.RateLimit.Value, nil).RateLimit
	}
	if req.MaxInFlight.Set {
		sub.MaxInFlight = throttleOf(nil, req.MaxInFlight.Value).MaxInFlight
	}
	got, err := s.Repo.UpdateSubscription(c.Request.Context(), sub)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusOK, subscriptionView(got))
}

// checkEventTypes says what is wrong with a subscription's event types, or "".
func checkEventTypes(ts []string) string {
	if len(ts) > MaxEventTypes {
		return fmt.Sprintf("eventTypes: at most %d per subscription", MaxEventTypes)
	}
	for i, t := range ts {
		if t != "*" && !eventName.MatchString(t) {
			return fmt.Sprintf("eventTypes[%d]: 1 to 128 letters, digits, '_', '.', ':' or '-'", i)
		}
	}
	return ""
}

// checkTimeout says what is wrong with a per-attempt timeout, or "".
func checkTimeout(ms int64) string {
	if ms < 100 || ms > 120_000 {
		return "timeoutMs: from 100 to 120000"
	}
	return ""
}
