package usecase

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/signature"
)

// MaxEventTypes bounds the event types one subscription may list.
const MaxEventTypes = 50

// Signature schemes, named as Standard Webhooks versions them.
const (
	SchemeHMAC    = "v1"  // HMAC-SHA256 with a shared secret
	SchemeEd25519 = "v1a" // ed25519: hookd keeps the signing key, the subscriber gets the public key
)

// RetryPolicy is a subscription's own retry policy; nil fields take the defaults.
type RetryPolicy struct {
	InitialIntervalMS  *int64   `json:"initialIntervalMs"`
	BackoffCoefficient *float64 `json:"backoffCoefficient"`
	MaxIntervalMS      *int64   `json:"maxIntervalMs"`
	MaxAttempts        *int32   `json:"maxAttempts"`
	MaxDurationMS      *int64   `json:"maxDurationMs"`
}

func (r *RetryPolicy) validate() error {
	if r == nil {
		return nil
	}
	pos := func(name string, v *int64, lo, hi int64) error {
		if v != nil && (*v < lo || *v > hi) {
			return invalid("retryPolicy."+name, "from %d to %d", lo, hi)
		}
		return nil
	}
	day := int64(7 * 24 * time.Hour / time.Millisecond)
	for _, err := range []error{pos("initialIntervalMs", r.InitialIntervalMS, 1, day), pos("maxIntervalMs", r.MaxIntervalMS, 1, day),
		pos("maxDurationMs", r.MaxDurationMS, 1, 30*day)} {
		if err != nil {
			return err
		}
	}
	if r.BackoffCoefficient != nil && (*r.BackoffCoefficient < 1 || *r.BackoffCoefficient > 10) {
		return invalid("retryPolicy.backoffCoefficient", "from 1 to 10")
	}
	if r.MaxAttempts != nil && (*r.MaxAttempts < 1 || *r.MaxAttempts > 1000) {
		return invalid("retryPolicy.maxAttempts", "from 1 to 1000")
	}
	return nil
}

func (r *RetryPolicy) stored(timeoutMS *int64) db.RetryPolicy {
	return db.RetryPolicy{InitialIntervalMS: r.InitialIntervalMS, BackoffCoefficient: r.BackoffCoefficient,
		MaxIntervalMS: r.MaxIntervalMS, MaxAttempts: r.MaxAttempts, MaxDurationMS: r.MaxDurationMS, TimeoutMS: timeoutMS}
}

// Optional is a field of a change that may be left out, set, or null (removed).
type Optional[T any] struct {
	Set   bool
	Value *T
}

// UnmarshalJSON reads null as "remove" and a value as "set"; a field left out is never called.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		return nil
	}
	o.Value = new(T)
	return json.Unmarshal(b, o.Value)
}

// NewSubscription is what a subscription is created from. It either lists event types of the
// caller's own events (EventTypes), or names another app's registered event (AppID, Topic,
// EventName), which needs one of that publisher's permissions.
type NewSubscription struct {
	URL          string          `json:"url"`
	EventTypes   []string        `json:"eventTypes"`
	AppID        string          `json:"appId"`
	Topic        string          `json:"topic"`
	EventName    string          `json:"eventName"`
	FilterLogic  json.RawMessage `json:"filterLogic"`
	ContactEmail string          `json:"contactEmail"`
	// Secret is the caller's own v1 signing secret ("": hookd makes one).
	Secret string `json:"secret"`
	// SignatureScheme: SchemeHMAC (the default) or SchemeEd25519.
	SignatureScheme string       `json:"signatureScheme"`
	CallbackKey     string       `json:"callbackKey"`
	RetryPolicy     *RetryPolicy `json:"retryPolicy"`
	TimeoutMS       *int64       `json:"timeoutMs"`
	RateLimit       *float64     `json:"rateLimit"`
	MaxInFlight     *int32       `json:"maxInFlight"`
}

// CreatedSubscription is a new subscription and what is shown of it once only.
type CreatedSubscription struct {
	db.Subscription
	// Secret is the v1 signing secret, shown this once ("" for a v1a subscription, whose public
	// key is shown on every read).
	Secret string
	// Registered is the registered event subscribed to (zero for own event types): a deprecated
	// one is subscribed to all the same, and the caller should be warned.
	Registered db.RegisteredEvent
}

// subscriptionFields are the fields a subscription's creation and its change share, checked the
// same way by both.
type subscriptionFields struct {
	FilterLogic  json.RawMessage
	ContactEmail *string
	CallbackKey  *string
	RetryPolicy  *RetryPolicy
	TimeoutMS    *int64
	RateLimit    Optional[float64]
	MaxInFlight  Optional[int32]
}

// apply checks the fields that are set and writes them into sub.
func (f subscriptionFields) apply(sub *db.Subscription) error {
	if f.FilterLogic != nil { // left out: unchanged; null: removed
		fl, err := CompiledFilter(f.FilterLogic)
		if err != nil {
			return &Error{Kind: Invalid, Field: "filterLogic", Reason: err.Error(), Err: err}
		}
		sub.FilterLogic = fl
	}
	if f.ContactEmail != nil {
		if *f.ContactEmail != "" && !ValidEmail(*f.ContactEmail) {
			return invalid("contactEmail", "not an e-mail address")
		}
		sub.ContactEmail = *f.ContactEmail
	}
	if f.CallbackKey != nil {
		if len(*f.CallbackKey) > 512 {
			return invalid("callbackKey", "at most 512 characters")
		}
		sub.CallbackKey = sql.NullString{String: *f.CallbackKey, Valid: *f.CallbackKey != ""}
	}
	if f.RetryPolicy != nil {
		if err := f.RetryPolicy.validate(); err != nil {
			return err
		}
	}
	if f.TimeoutMS != nil {
		if *f.TimeoutMS < 100 || *f.TimeoutMS > 120_000 {
			return invalid("timeoutMs", "from 100 to 120000")
		}
	}
	if f.RetryPolicy != nil {
		sub.RetryPolicy = f.RetryPolicy.stored(sub.TimeoutMS)
	}
	if f.TimeoutMS != nil {
		sub.TimeoutMS = f.TimeoutMS
	}
	if r := f.RateLimit.Value; r != nil && (*r <= 0 || *r > 10000) {
		return invalid("rateLimit", "deliveries per second, more than 0 and at most 10000")
	}
	if n := f.MaxInFlight.Value; n != nil && (*n < 1 || *n > 1000) {
		return invalid("maxInFlight", "from 1 to 1000")
	}
	if f.RateLimit.Set {
		sub.RateLimit = sql.NullFloat64{}
		if f.RateLimit.Value != nil {
			sub.RateLimit = sql.NullFloat64{Float64: *f.RateLimit.Value, Valid: true}
		}
	}
	if f.MaxInFlight.Set {
		sub.MaxInFlight = sql.NullInt32{}
		if f.MaxInFlight.Value != nil {
			sub.MaxInFlight = sql.NullInt32{Int32: *f.MaxInFlight.Value, Valid: true}
		}
	}
	return nil
}

// checkEventTypes checks a subscription's own event types.
func checkEventTypes(ts []string) error {
	if len(ts) > MaxEventTypes {
		return invalid("eventTypes", "at most %d per subscription", MaxEventTypes)
	}
	for i, t := range ts {
		if t != "*" && !NamePattern.MatchString(t) {
			return invalid(fmt.Sprintf("eventTypes[%d]", i), nameRule)
		}
	}
	return nil
}

// CreateSubscription registers a callback URL and returns it with its secret (shown once).
func (s *Service) CreateSubscription(ctx context.Context, c Caller, in NewSubscription) (CreatedSubscription, error) {
	if err := c.mayChange(); err != nil {
		return CreatedSubscription{}, err
	}
	if err := s.CheckTarget(ctx, "url", in.URL); err != nil {
		return CreatedSubscription{}, err
	}
	sub := db.Subscription{
		ID: "sub_" + uuid.NewString(), AppID: c.App.ID, PublisherAppID: c.App.ID, URL: in.URL, EventTypes: pq.StringArray{},
	}
	email, key := in.ContactEmail, in.CallbackKey
	fields := subscriptionFields{FilterLogic: in.FilterLogic, ContactEmail: &email, CallbackKey: &key, RetryPolicy: in.RetryPolicy,
		TimeoutMS: in.TimeoutMS, RateLimit: Optional[float64]{Set: in.RateLimit != nil, Value: in.RateLimit},
		MaxInFlight: Optional[int32]{Set: in.MaxInFlight != nil, Value: in.MaxInFlight}}
	if err := fields.apply(&sub); err != nil {
		return CreatedSubscription{}, err
	}
	var err error
	switch in.SignatureScheme {
	case "", SchemeHMAC:
		if sub.Secret, err = secretOrNew(in.Secret); err != nil {
			return CreatedSubscription{}, err
		}
	case SchemeEd25519:
		if in.Secret != "" {
			return CreatedSubscription{}, invalid("secret", "not with signatureScheme v1a (hookd makes the key pair and shows the public key)")
		}
		if sub.Secret, _, err = signature.NewSigningKey(); err != nil {
			return CreatedSubscription{}, err
		}
	default:
		return CreatedSubscription{}, invalid("signatureScheme", `"v1" (HMAC-SHA256, the default) or "v1a" (ed25519)`)
	}

	var registered db.RegisteredEvent
	switch {
	case in.AppID != "" || in.EventName != "":
		if registered, err = s.registeredTarget(ctx, c, in); err != nil {
			return CreatedSubscription{}, err
		}
		sub.PublisherAppID = registered.AppID
		sub.RegisteredEventID = sql.NullInt64{Int64: registered.ID, Valid: true}
		sub.EventTypes = pq.StringArray{registered.EventType}
	default:
		if len(in.EventTypes) == 0 {
			return CreatedSubscription{}, invalid("eventTypes", "list at least one event type (or \"*\"), or subscribe to a registered event with appId+topic+eventName")
		}
		if err := checkEventTypes(in.EventTypes); err != nil {
			return CreatedSubscription{}, err
		}
		sub.EventTypes = in.EventTypes
	}
	got, err := s.Repo.CreateSubscription(ctx, sub)
	if err != nil {
		return CreatedSubscription{}, err
	}
	out := CreatedSubscription{Subscription: got, Registered: registered}
	if !signature.IsSigningKey(got.Secret) {
		out.Secret = got.Secret
	}
	return out, nil
}

// registeredTarget finds the registered event a new subscription names, if the caller may
// subscribe to it.
func (s *Service) registeredTarget(ctx context.Context, c Caller, in NewSubscription) (db.RegisteredEvent, error) {
	if len(in.EventTypes) > 0 {
		return db.RegisteredEvent{}, invalid("eventTypes", "give either eventTypes (your own events) or appId+topic+eventName, not both")
	}
	if in.AppID == "" || in.EventName == "" || in.Topic == "" {
		return db.RegisteredEvent{}, invalid("appId, topic and eventName", "all three name a registered event")
	}
	if !s.TopicKnown(in.Topic) {
		return db.RegisteredEvent{}, notFound("unknown topic %q", in.Topic)
	}
	pub, err := s.Repo.GetApp(ctx, in.AppID)
	if errors.Is(err, db.ErrNotFound) {
		return db.RegisteredEvent{}, notFound("no publisher app %s", in.AppID)
	} else if err != nil {
		return db.RegisteredEvent{}, err
	}
	ev, err := s.Repo.GetRegisteredEvent(ctx, pub.ID, in.Topic, in.EventName)
	if errors.Is(err, db.ErrNotFound) {
		return db.RegisteredEvent{}, notFound("app %s has no event %q on topic %q", pub.ID, in.EventName, in.Topic)
	} else if err != nil {
		return db.RegisteredEvent{}, err
	}
	if pub.ID != c.App.ID && !sharesPermission(c.App.Permissions, pub.Permissions) {
		return db.RegisteredEvent{}, forbidden("subscribing to %s's events needs one of its permissions: %v", pub.Name, []string(pub.Permissions))
	}
	ev.AppID = pub.ID
	return ev, nil
}

// TopicKnown tells whether t is one of the configured topics.
func (s *Service) TopicKnown(t string) bool {
	for _, k := range s.Config.Topics {
		if k == t {
			return true
		}
	}
	return false
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

// secretOrNew checks a signing secret the caller chose, or makes one when none was given.
func secretOrNew(given string) (string, error) {
	if given == "" {
		return signature.NewSecret()
	}
	if !signature.ValidSecret(given) {
		return "", invalid("secret", "must be whsec_ followed by base64, or left out to have one made")
	}
	return given, nil
}

// SubscriptionChange is a change to a subscription: the fields set are changed, the others kept.
type SubscriptionChange struct {
	URL          *string           `json:"url"`
	EventTypes   []string          `json:"eventTypes"`
	FilterLogic  json.RawMessage   `json:"filterLogic"` // null removes the filter
	ContactEmail *string           `json:"contactEmail"`
	CallbackKey  *string           `json:"callbackKey"` // "" removes the key
	RetryPolicy  *RetryPolicy      `json:"retryPolicy"` // replaces the whole policy
	TimeoutMS    *int64            `json:"timeoutMs"`
	RateLimit    Optional[float64] `json:"rateLimit"`   // null removes the limit
	MaxInFlight  Optional[int32]   `json:"maxInFlight"` // null removes the limit
}

// UpdateSubscription changes the fields the change sets.
func (s *Service) UpdateSubscription(ctx context.Context, c Caller, id string, ch SubscriptionChange) (db.Subscription, error) {
	if err := c.mayChange(); err != nil {
		return db.Subscription{}, err
	}
	sub, err := s.GetSubscription(ctx, c, id)
	if err != nil {
		return db.Subscription{}, err
	}
	if ch.URL != nil {
		if err := s.CheckTarget(ctx, "url", *ch.URL); err != nil {
			return db.Subscription{}, err
		}
		sub.URL = *ch.URL
	}
	if ch.EventTypes != nil {
		if sub.RegisteredEventID.Valid {
			return db.Subscription{}, invalid("eventTypes", "a subscription to a registered event follows that event's type")
		}
		if len(ch.EventTypes) == 0 {
			return db.Subscription{}, invalid("eventTypes", "list at least one event type (or \"*\")")
		}
		if err := checkEventTypes(ch.EventTypes); err != nil {
			return db.Subscription{}, err
		}
		sub.EventTypes = ch.EventTypes
	}
	if err := (subscriptionFields{FilterLogic: ch.FilterLogic, ContactEmail: ch.ContactEmail, CallbackKey: ch.CallbackKey,
		RetryPolicy: ch.RetryPolicy, TimeoutMS: ch.TimeoutMS, RateLimit: ch.RateLimit, MaxInFlight: ch.MaxInFlight}).apply(&sub); err != nil {
		return db.Subscription{}, err
	}
	return s.Repo.UpdateSubscription(ctx, sub)
}

// GetSubscription reads one of the caller's subscriptions.
func (s *Service) GetSubscription(ctx context.Context, c Caller, id string) (db.Subscription, error) {
	if !c.sees(id) {
		return db.Subscription{}, db.ErrNotFound
	}
	return s.Repo.GetSubscription(ctx, c.scope(), id)
}

// ListSubscriptions reads a page of the caller's subscriptions after the cursor page ("": the
// first), at most limit, and the cursor of the next page ("" on the last).
func (s *Service) ListSubscriptions(ctx context.Context, c Caller, page string, limit int) ([]db.Subscription, string, error) {
	subs, err := s.Repo.ListSubscriptions(ctx, c.App.ID, page, limit+1)
	if err != nil {
		return nil, "", err
	}
	subs, next := TrimPage(subs, limit, func(sub db.Subscription) string { return sub.ID })
	if c.Subscriptions != nil {
		subs = slicesFilter(subs, func(sub db.Subscription) bool { return c.sees(sub.ID) })
	}
	return subs, next, nil
}

func slicesFilter[T any](xs []T, keep func(T) bool) []T {
	out := xs[:0:0]
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// SetSubscriptionActive enables or disables one of the caller's subscriptions; a change sends the
// app's operational webhook (subscription.enabled or subscription.disabled).
func (s *Service) SetSubscriptionActive(ctx context.Context, c Caller, id string, active bool) (db.Subscription, error) {
	if err := c.mayChange(); err != nil {
		return db.Subscription{}, err
	}
	if !c.sees(id) {
		return db.Subscription{}, db.ErrNotFound
	}
	reason := ""
	if !active {
		reason = "disabled by its owner"
	}
	sub, changed, err := s.Repo.SetSubscriptionActive(ctx, c.scope(), id, active, reason)
	if errors.Is(err, db.ErrEventRemoved) {
		return db.Subscription{}, &Error{Kind: Conflict, Err: err, Reason: db.ErrEventRemoved.Error() +
			": this subscription cannot be enabled again; subscribe to an event the publisher offers (GET /v1/apps)"}
	}
	if err != nil {
		return db.Subscription{}, err
	}
	if changed {
		typ := callbacks.OpSubscriptionDisabled
		if active {
			typ = callbacks.OpSubscriptionEnabled
		}
		s.Emit(ctx, sub.AppID, typ, callbacks.SubscriptionChangeKey(sub), callbacks.SubscriptionData(sub, c.actor()))
	}
	return sub, nil
}

// DeleteSubscription removes one of the caller's subscriptions and cancels its deliveries that
// are still retrying.
func (s *Service) DeleteSubscription(ctx context.Context, c Caller, id string) error {
	if err := c.mayChange(); err != nil {
		return err
	}
	if !c.sees(id) {
		return db.ErrNotFound
	}
	pending, err := s.Repo.DeleteSubscription(ctx, c.App.ID, id)
	if err != nil {
		return err
	}
	for _, wf := range pending {
		// Best effort: a delivery whose workflow has not started yet (still on its first attempt)
		// finds the subscription inactive at its next attempt and stops there.
		if err := s.Engine.CancelDelivery(ctx, wf, "subscription deleted"); err != nil {
			s.Log.Warn("cancel delivery of deleted subscription", "workflow_id", wf, "error", err)
		}
	}
	return nil
}

// RotatedSecret is a subscription after a rotation, and its new v1 secret (shown this once; ""
// for v1a, whose new public key the subscription shows).
type RotatedSecret struct {
	db.Subscription
	Secret string
}

// MaxRotationGrace is the longest an old secret keeps signing after a rotation.
const MaxRotationGrace = 30 * 24 * time.Hour

// RotateSecret gives a subscription a new secret (secret, or a new one when ""); the old one
// keeps signing for grace (nil: 24 h), so both signatures are sent meanwhile.
func (s *Service) RotateSecret(ctx context.Context, c Caller, id, secret string, grace *time.Duration) (RotatedSecret, error) {
	if err := c.mayChange(); err != nil {
		return RotatedSecret{}, err
	}
	g := 24 * time.Hour
	if grace != nil {
		if *grace < 0 || *grace > MaxRotationGrace {
			return RotatedSecret{}, invalid("graceMs", "from 0 to 30 days")
		}
		g = *grace
	}
	cur, err := s.GetSubscription(ctx, c, id)
	if err != nil {
		return RotatedSecret{}, err
	}
	asymmetric := signature.IsSigningKey(cur.Secret)
	switch {
	case asymmetric && secret != "":
		return RotatedSecret{}, invalid("secret", "not for a v1a subscription (hookd makes the new key pair and shows the public key)")
	case asymmetric:
		secret, _, err = signature.NewSigningKey()
	default:
		secret, err = secretOrNew(secret)
	}
	if err != nil {
		return RotatedSecret{}, err
	}
	sub, err := s.Repo.RotateSecret(ctx, c.App.ID, id, secret, time.Now().Add(g))
	if err != nil {
		return RotatedSecret{}, err
	}
	out := RotatedSecret{Subscription: sub}
	if !asymmetric {
		out.Secret = secret
	}
	return out, nil
}

// Emit stores an operational webhook for appID (if it has an operations URL) and dispatches it.
// The change it reports is made already, so a failure is logged, not returned.
func (s *Service) Emit(ctx context.Context, appID, typ, key string, data any) {
	ev, inserted, err := callbacks.StoreOperational(ctx, s.Repo, appID, typ, key, data)
	if err == nil && inserted {
		err = s.Dispatch(ctx, ev)
	}
	if err != nil {
		s.Log.Error("operational webhook not sent", "type", typ, "app_id", appID, "error", err)
	}
}
