package portal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/usecase"
)

// caller is the visit as the use cases know a caller: its app, narrowed and read-only as the
// session is.
func (v *visit) caller() usecase.Caller {
	c := usecase.Caller{App: v.App, ReadOnly: v.Session.ReadOnly, Actor: "portal session " + v.Session.ID}
	if v.Session.Narrowed() {
		c.Subscriptions = []string(v.Session.SubscriptionIDs)
	}
	return c
}

// endpointRow is a subscription with its health over the last 24 hours.
type endpointRow struct {
	Sub    db.Subscription
	Health db.SubscriptionHealth
}

// SuccessRate is the share of successful attempts in percent ("–" without attempts).
func (e endpointRow) SuccessRate() string {
	if e.Health.Attempts == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(e.Health.Succeeded)/float64(e.Health.Attempts))
}

// P50 is the median attempt duration.
func (e endpointRow) P50() string {
	if !e.Health.P50MS.Valid {
		return "–"
	}
	return fmt.Sprintf("%.0f ms", e.Health.P50MS.Float64)
}

// Healthy says whether the last day went without failures.
func (e endpointRow) Healthy() bool {
	return e.Health.Attempts > 0 && e.Health.Succeeded == e.Health.Attempts
}

const listLimit = 50

// endpoints lists the session's subscriptions with their health.
func (h *Handler) endpoints(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx := r.Context()
	subs, next, err := h.UseCases.ListSubscriptions(ctx, v.caller(), r.URL.Query().Get("page"), listLimit)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	health, err := h.Repo.SubscriptionsHealth(ctx, v.App.ID, ids, time.Now().Add(-24*time.Hour))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	rows := make([]endpointRow, len(subs))
	for i, s := range subs {
		rows[i] = endpointRow{Sub: s, Health: health[s.ID]}
	}
	h.render(w, r, v, http.StatusOK, "endpoints", page{Title: "Endpoints", Nav: "endpoints",
		Data: map[string]any{"Rows": rows, "Next": next}})
}

// endpointForm is the create/edit form's content.
type endpointForm struct {
	Sub        db.Subscription
	New        bool
	Catalog    []db.CatalogEntry
	Fields     map[string]string // the values as typed (after a refusal)
	FieldError string            // the field a refusal is about
	Secret     string            // shown once after creation or rotation
	PublicKey  string
	Health     db.SubscriptionHealth
	Example    string        // a payload to test the filter against
	Recent     []db.LogEntry // the endpoint's latest deliveries, whose events the filter may be tested on
	Scheme     string
}

func (h *Handler) catalog(r *http.Request, v *visit) ([]db.CatalogEntry, error) {
	app := v.App
	return h.Repo.Catalog(r.Context(), &app, db.CatalogFilter{}, db.CatalogCursor{}, 200)
}

func (h *Handler) newEndpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	if v.Session.Narrowed() {
		h.errorPage(w, r, v, http.StatusForbidden, "This session covers some endpoints only: it cannot add new ones.")
		return
	}
	cat, err := h.catalog(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.render(w, r, v, http.StatusOK, "endpoint", page{Title: "New endpoint", Nav: "endpoints",
		Data: endpointForm{New: true, Catalog: cat, Fields: map[string]string{}, Example: firstExample(cat)}})
}

func (h *Handler) endpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx := r.Context()
	sub, err := h.UseCases.GetSubscription(ctx, v.caller(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	cat, err := h.catalog(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	health, err := h.Repo.SubscriptionsHealth(ctx, v.App.ID, []string{sub.ID}, time.Now().Add(-24*time.Hour))
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	form := h.formOf(sub, cat, health[sub.ID])
	if form.Recent, err = h.Repo.DeliveryLog(ctx, db.LogFilter{AppID: v.App.ID, SubscriptionID: sub.ID, Limit: 10}); err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.render(w, r, v, http.StatusOK, "endpoint", page{Title: "Endpoint " + sub.ID, Nav: "endpoints", Data: form})
}

func (h *Handler) formOf(sub db.Subscription, cat []db.CatalogEntry, health db.SubscriptionHealth) endpointForm {
	f := endpointForm{Sub: sub, Catalog: cat, Fields: fieldsOf(sub), Health: health, Example: firstExample(matching(cat, sub.EventTypes))}
	f.Scheme, f.PublicKey = schemeOf(sub)
	return f
}

// matching keeps the catalog entries of the given event types.
func matching(cat []db.CatalogEntry, types []string) []db.CatalogEntry {
	var out []db.CatalogEntry
	for _, e := range cat {
		if slices.Contains(types, e.EventType) {
			out = append(out, e)
		}
	}
	return out
}

// firstExample is the first example payload in the catalog, pretty, for the filter tester.
func firstExample(cat []db.CatalogEntry) string {
	for _, e := range cat {
		if !e.Examples.Valid {
			continue
		}
		var exs []json.RawMessage
		if json.Unmarshal(e.Examples.JSONText, &exs) == nil && len(exs) > 0 {
			return pretty(exs[0])
		}
	}
	return "{}"
}

// fieldsOf is a subscription's form values.
func fieldsOf(sub db.Subscription) map[string]string {
	f := map[string]string{"url": sub.URL, "eventTypes": strings.Join(sub.EventTypes, ", "), "contactEmail": sub.ContactEmail}
	if sub.FilterLogic.Valid {
		f["filterLogic"] = pretty(json.RawMessage(sub.FilterLogic.JSONText))
	}
	if sub.RateLimit.Valid {
		f["rateLimit"] = strconv.FormatFloat(sub.RateLimit.Float64, 'f', -1, 64)
	}
	if sub.MaxInFlight.Valid {
		f["maxInFlight"] = strconv.Itoa(int(sub.MaxInFlight.Int32))
	}
	rp := sub.RetryPolicy
	if rp.MaxAttempts != nil {
		f["maxAttempts"] = strconv.Itoa(int(*rp.MaxAttempts))
	}
	if rp.InitialIntervalMS != nil {
		f["initialIntervalMs"] = strconv.FormatInt(*rp.InitialIntervalMS, 10)
	}
	if rp.MaxIntervalMS != nil {
		f["maxIntervalMs"] = strconv.FormatInt(*rp.MaxIntervalMS, 10)
	}
	if rp.BackoffCoefficient != nil {
		f["backoffCoefficient"] = strconv.FormatFloat(*rp.BackoffCoefficient, 'f', -1, 64)
	}
	if rp.MaxDurationMS != nil {
		f["maxDurationMs"] = strconv.FormatInt(*rp.MaxDurationMS, 10)
	}
	if sub.TimeoutMS != nil {
		f["timeoutMs"] = strconv.FormatInt(*sub.TimeoutMS, 10)
	}
	return f
}

// eventTypes is the catalog: what the app may subscribe to, with schemas and examples.
func (h *Handler) eventTypes(w http.ResponseWriter, r *http.Request, v *visit) {
	cat, err := h.catalog(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	subs, _, err := h.UseCases.ListSubscriptions(r.Context(), v.caller(), "", 200)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.render(w, r, v, http.StatusOK, "event-types", page{Title: "Event catalog", Nav: "event-types",
		Data: map[string]any{"Catalog": cat, "Subs": subs}})
}

// logRow is a delivery in the message log.
type logRow struct {
	db.LogEntry
}

// deliveries is the message log: newest first, filtered, paged, refreshed while open.
func (h *Handler) deliveries(w http.ResponseWriter, r *http.Request, v *visit) {
	q := r.URL.Query()
	f := db.LogFilter{AppID: v.App.ID, Status: q.Get("status"), EventType: q.Get("eventType"), SubscriptionID: q.Get("endpoint"),
		Limit: listLimit + 1}
	if v.Session.Narrowed() {
		f.SubscriptionIDs = v.Session.SubscriptionIDs
	}
	switch f.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed, delivery.StatusCancelled:
	default:
		f.Status = ""
	}
	if len(f.EventType) > 128 {
		f.EventType = ""
	}
	if len(f.SubscriptionID) > 200 {
		f.SubscriptionID = ""
	}
	window := q.Get("window")
	if d, ok := windows[window]; ok {
		f.Since = time.Now().Add(-d)
	}
	if p := q.Get("before"); p != "" {
		if t, id, ok := decodeCursor(p); ok {
			f.BeforeCreated, f.BeforeID = t, id
		}
	}
	rows, err := h.Repo.DeliveryLog(r.Context(), f)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	next := ""
	if len(rows) > listLimit {
		rows = rows[:listLimit]
		last := rows[listLimit-1]
		nq := url.Values{}
		for k, vs := range q {
			nq[k] = vs
		}
		nq.Set("before", encodeCursor(last.CreatedAt, last.ID))
		nq.Del("flash")
		next = Prefix + "/deliveries?" + nq.Encode()
	}
	subs, _, err := h.UseCases.ListSubscriptions(r.Context(), v.caller(), "", 200)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.render(w, r, v, http.StatusOK, "deliveries", page{Title: "Message log", Nav: "deliveries",
		Data: map[string]any{"Rows": rows, "Next": next, "Q": q, "Subs": subs, "Statuses": []string{delivery.StatusPending,
			delivery.StatusSucceeded, delivery.StatusFailed, delivery.StatusCancelled}, "Windows": windowNames,
			"Paged": q.Get("before") != ""}})
}

var windows = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}
var windowNames = []string{"1h", "24h", "7d", "30d"}

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + ":" + id))
}

func decodeCursor(s string) (time.Time, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", false
	}
	n, id, ok := strings.Cut(string(b), ":")
	nanos, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(0, nanos), id, true
}

// ownDelivery loads a delivery the session may see: its app's, and within its narrowing.
// Anything else is db.ErrNotFound, as if it did not exist.
func (h *Handler) ownDelivery(r *http.Request, v *visit) (db.Delivery, error) {
	d, err := h.Repo.GetDelivery(r.Context(), db.OwnedBy(v.App.ID), r.PathValue("id"))
	if err != nil {
		return db.Delivery{}, err
	}
	if !v.Session.Allows(d.SubscriptionID.String) {
		return db.Delivery{}, db.ErrNotFound
	}
	return d, nil
}

// attemptView is one attempt as the delivery page shows it.
type attemptView struct {
	db.Attempt
	N       int // its number (.Attempt is the embedded row in a template)
	Headers []header
}

type header struct{ Name, Value string }

// step is one line of a delivery's timeline, in plain words.
type step struct {
	At   time.Time
	Text string
}

func (h *Handler) delivery(w http.ResponseWriter, r *http.Request, v *visit) {
	ctx := r.Context()
	d, err := h.ownDelivery(r, v)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	ev, err := h.Repo.GetEvent(ctx, db.AnyApp(), d.EventID) // the app owns the delivery: it may see its event
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	atts, err := h.Repo.Attempts(ctx, d.ID)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	views := make([]attemptView, len(atts))
	for i, a := range atts {
		views[i] = attemptView{Attempt: a, N: a.Attempt, Headers: headersOf(a.ResponseHeaders.JSONText)}
	}
	var sub db.Subscription
	if d.SubscriptionID.Valid {
		sub, _ = h.Repo.GetSubscription(ctx, db.OwnedBy(v.App.ID), d.SubscriptionID.String) // gone: shown without it
	}
	h.render(w, r, v, http.StatusOK, "delivery", page{Title: "Delivery " + d.ID, Nav: "deliveries",
		Data: map[string]any{"D": d, "Event": ev, "EventID": delivery.ClientEventID(d.EventID), "Payload": pretty(json.RawMessage(ev.Payload)),
			"Attempts": views, "Timeline": timeline(d, ev, atts, sub), "NextRetry": nextRetry(d, atts, sub, h.defaults()),
			"Sub": sub}})
}

// headersOf reads stored response headers ({"Name": ["v"]} or {"Name": "v"}) in name order.
func headersOf(raw []byte) []header {
	if len(raw) == 0 {
		return nil
	}
	var multi map[string][]string
	if json.Unmarshal(raw, &multi) != nil {
		var single map[string]string
		if json.Unmarshal(raw, &single) != nil {
			return nil
		}
		multi = map[string][]string{}
		for k, v := range single {
			multi[k] = []string{v}
		}
	}
	out := make([]header, 0, len(multi))
	for k, vs := range multi {
		out = append(out, header{k, strings.Join(vs, ", ")})
	}
	slices.SortFunc(out, func(a, b header) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// defaults is the retry policy a subscription without its own follows.
func (h *Handler) defaults() delivery.RetryPolicy {
	rd := h.Config.Retry
	ms := func(d time.Duration) *int64 { n := int64(d / time.Millisecond); return &n }
	attempts := int32(rd.MaxAttempts)
	coeff := rd.BackoffCoefficient
	return delivery.RetryPolicy{InitialIntervalMS: ms(rd.InitialInterval), BackoffCoefficient: &coeff, MaxIntervalMS: ms(rd.MaxInterval),
		MaxAttempts: &attempts, MaxDurationMS: ms(rd.MaxDuration)}
}

// nextRetry estimates when a pending delivery is tried next, from its last attempt and its retry
// policy ("" when it is not waiting for one).
func nextRetry(d db.Delivery, atts []db.Attempt, sub db.Subscription, def delivery.RetryPolicy) string {
	if d.Status != delivery.StatusPending || len(atts) == 0 {
		return ""
	}
	last := atts[len(atts)-1]
	if last.State == db.AttemptSending {
		return "now (an attempt is under way)"
	}
	pick := func(own, def *int64) int64 {
		if own != nil {
			return *own
		}
		if def != nil {
			return *def
		}
		return 1000
	}
	rp := sub.RetryPolicy
	interval := float64(pick(rp.InitialIntervalMS, def.InitialIntervalMS))
	coeff := 2.0
	if rp.BackoffCoefficient != nil {
		coeff = *rp.BackoffCoefficient
	} else if def.BackoffCoefficient != nil {
		coeff = *def.BackoffCoefficient
	}
	for i := 1; i < len(atts); i++ {
		interval *= coeff
	}
	if maxI := float64(pick(rp.MaxIntervalMS, def.MaxIntervalMS)); interval > maxI {
		interval = maxI
	}
	at := last.StartedAt.Add(time.Duration(last.DurationMS)*time.Millisecond + time.Duration(interval)*time.Millisecond)
	if at.Before(time.Now()) {
		return "any moment now"
	}
	return "about " + at.UTC().Format("2006-01-02 15:04:05 UTC") + " (in " + time.Until(at).Round(time.Second).String() + ")"
}

// timeline tells a delivery's story in the subscriber's words, from its rows.
func timeline(d db.Delivery, ev db.Event, atts []db.Attempt, sub db.Subscription) []step {
	out := []step{{ev.ReceivedAt, fmt.Sprintf("Event %s (%s) was published.", delivery.ClientEventID(ev.ID), ev.Type)}}
	if d.Replay > 0 {
		out = append(out, step{d.CreatedAt, fmt.Sprintf("This is replay %d of the delivery, asked for at this time.", d.Replay)})
	} else {
		out = append(out, step{d.CreatedAt, "The delivery to your endpoint was created."})
	}
	if d.Test {
		out = append(out, step{d.CreatedAt, "It is a test send."})
	}
	for _, a := range atts {
		var what string
		switch {
		case a.State == db.AttemptSending:
			what = "is under way"
		case a.State == db.AttemptInterrupted:
			what = "was interrupted: the worker stopped during it, so your endpoint may or may not have received it"
		case a.ResponseStatus.Valid && a.ResponseStatus.Int32 >= 200 && a.ResponseStatus.Int32 < 300:
			what = fmt.Sprintf("succeeded: your endpoint answered HTTP %d after %d ms", a.ResponseStatus.Int32, a.DurationMS)
		case a.ResponseStatus.Valid:
			what = fmt.Sprintf("failed: your endpoint answered HTTP %d after %d ms", a.ResponseStatus.Int32, a.DurationMS)
		default:
			what = fmt.Sprintf("failed after %d ms: %s", a.DurationMS, a.Error)
		}
		to := ""
		if a.URL.Valid {
			to = " to " + a.URL.String
		}
		out = append(out, step{a.StartedAt, fmt.Sprintf("Attempt %d%s %s.", a.Attempt, to, what)})
	}
	end := d.UpdatedAt
	if d.FinishedAt.Valid {
		end = d.FinishedAt.Time
	}
	switch d.Status {
	case delivery.StatusSucceeded:
		out = append(out, step{end, "Delivered. Nothing more will be sent unless someone replays it."})
	case delivery.StatusFailed:
		why := d.LastError
		if why == "" {
			why = "no reason recorded"
		}
		out = append(out, step{end, "Gave up: " + why + ". Nothing more will be sent unless someone replays it."})
	case delivery.StatusCancelled:
		why := d.LastError
		if why == "" {
			why = "cancelled"
		}
		out = append(out, step{end, "Cancelled (" + why + "). Nothing more will be sent unless someone replays it."})
	default:
		if len(atts) == 0 {
			out = append(out, step{d.UpdatedAt, "Waiting for its first attempt."})
		} else if !sub.Active && sub.ID != "" {
			out = append(out, step{d.UpdatedAt, "Waiting: the endpoint is disabled, so the next attempt will stop it."})
		} else {
			out = append(out, step{d.UpdatedAt, "Waiting to try again (see the next retry)."})
		}
	}
	return out
}

// recoverPage offers to replay every failure since a time.
func (h *Handler) recoverPage(w http.ResponseWriter, r *http.Request, v *visit) {
	subs, _, err := h.UseCases.ListSubscriptions(r.Context(), v.caller(), "", 200)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.render(w, r, v, http.StatusOK, "recover", page{Title: "Recover failures", Nav: "deliveries",
		Data: map[string]any{"Subs": subs, "Since": time.Now().Add(-24 * time.Hour).UTC().Format("2006-01-02T15:04")}})
}

// operation shows a recover's progress (refreshed while it runs). A narrowed session sees only
// the recovers of its own endpoints.
func (h *Handler) operation(w http.ResponseWriter, r *http.Request, v *visit) {
	op, err := h.UseCases.GetOperation(r.Context(), v.caller(), r.PathValue("id"))
	if err == nil && v.Session.Narrowed() && !v.Session.Allows(op.Window.SubscriptionID) {
		err = db.ErrNotFound
	}
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	total := 0
	for _, n := range op.Replays {
		total += n
	}
	h.render(w, r, v, http.StatusOK, "operation", page{Title: "Recovery " + op.ID, Nav: "deliveries",
		Data: map[string]any{"Op": op, "Counts": op.Replays, "Total": total, "Running": op.Status == db.OperationRunning}})
}

// operational shows the app's operations URL and what was sent there.
func (h *Handler) operational(w http.ResponseWriter, r *http.Request, v *visit) {
	if v.Session.Narrowed() {
		h.errorPage(w, r, v, http.StatusForbidden, "This session covers some endpoints only, not the app's operational webhooks.")
		return
	}
	rows, err := h.Repo.DeliveryLog(r.Context(), db.LogFilter{AppID: v.App.ID, Limit: listLimit,
		Kind: db.KindCallback, Topic: callbacks.OperationsService})
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.render(w, r, v, http.StatusOK, "operational", page{Title: "Operational webhooks", Nav: "operational",
		Data: map[string]any{"URL": v.App.OperationsURL, "Rows": rows}})
}

// auditPage lists what was done in the app's portal sessions.
func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, v *visit) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	rows, err := h.Repo.PortalAuditLog(r.Context(), v.App.ID, before, listLimit+1)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	next := ""
	if len(rows) > listLimit {
		rows = rows[:listLimit]
		next = fmt.Sprintf("%s/audit?before=%d", Prefix, rows[listLimit-1].ID)
	}
	h.render(w, r, v, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Data: map[string]any{"Rows": rows, "Next": next}})
}

// filterTest evaluates a filter against an example payload and answers a fragment saying whether
// it matches (htmx), or why it cannot.
func (h *Handler) filterTest(w http.ResponseWriter, r *http.Request, v *visit) {
	if !h.sameOrigin(r) || !validCSRF(r, v.CSRF) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	eventType, topic, example := r.PostFormValue("eventType"), "", r.PostFormValue("example")
	if id := r.PostFormValue("delivery"); id != "" {
		// A past event of the session's own: its data, type and topic.
		d, err := h.Repo.GetDelivery(r.Context(), db.OwnedBy(v.App.ID), id)
		if err == nil && !v.Session.Allows(d.SubscriptionID.String) {
			err = db.ErrNotFound
		}
		var ev db.Event
		if err == nil {
			ev, err = h.Repo.GetEvent(r.Context(), db.AnyApp(), d.EventID)
		}
		if errors.Is(err, db.ErrNotFound) {
			http.Error(w, "no such delivery", http.StatusNotFound)
			return
		}
		if err != nil {
			h.fail(w, r, v, err)
			return
		}
		eventType, topic, example = ev.Type, ev.Topic, string(ev.Payload)
	}
	res := filterResult(r.PostFormValue("filterLogic"), eventType, topic, example)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = h.pages["fragments"].ExecuteTemplate(w, "filter-result", res)
}

// pretty indents JSON (or returns it as it is when it is not JSON).
func pretty(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
