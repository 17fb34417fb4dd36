package portal

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/filter"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/usecase"
)

// Every action here goes through the REST API's use cases with the session as the caller
// (narrowed, read-only as the session is), and is recorded in the audit log.

// formError is a refusal of a form field, shown next to the form.
type formError struct {
	Field, Message string
}

func (e *formError) Error() string { return e.Message }

// parseEndpointForm reads a form's fields into a subscription creation and change.
func parseEndpointForm(r *http.Request, creating bool) (usecase.NewSubscription, usecase.SubscriptionChange, map[string]string, error) {
	fields := map[string]string{}
	for _, k := range []string{"url", "eventTypes", "event", "filterLogic", "contactEmail", "rateLimit", "maxInFlight", "maxAttempts",
		"initialIntervalMs", "backoffCoefficient", "maxIntervalMs", "maxDurationMs", "timeoutMs", "signatureScheme", "callbackKey", "clearCallbackKey"} {
		fields[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	var ns usecase.NewSubscription
	var ch usecase.SubscriptionChange
	num := func(name string) (*int64, error) {
		if fields[name] == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(fields[name], 10, 64)
		if err != nil {
			return nil, &formError{name, name + ": a whole number"}
		}
		return &n, nil
	}
	flt := func(name string) (*float64, error) {
		if fields[name] == "" {
			return nil, nil
		}
		f, err := strconv.ParseFloat(fields[name], 64)
		if err != nil {
			return nil, &formError{name, name + ": a number"}
		}
		return &f, nil
	}
	var rp usecase.RetryPolicy
	var err error
	var attempts, inFlight, timeout *int64
	if attempts, err = num("maxAttempts"); err != nil {
		return ns, ch, fields, err
	}
	if attempts != nil {
		a := int32(min(max(*attempts, -1), 1<<30))
		rp.MaxAttempts = &a
	}
	if rp.InitialIntervalMS, err = num("initialIntervalMs"); err != nil {
		return ns, ch, fields, err
	}
	if rp.MaxIntervalMS, err = num("maxIntervalMs"); err != nil {
		return ns, ch, fields, err
	}
	if rp.MaxDurationMS, err = num("maxDurationMs"); err != nil {
		return ns, ch, fields, err
	}
	if rp.BackoffCoefficient, err = flt("backoffCoefficient"); err != nil {
		return ns, ch, fields, err
	}
	if timeout, err = num("timeoutMs"); err != nil {
		return ns, ch, fields, err
	}
	rate, err := flt("rateLimit")
	if err != nil {
		return ns, ch, fields, err
	}
	if inFlight, err = num("maxInFlight"); err != nil {
		return ns, ch, fields, err
	}
	var maxInFlight *int32
	if inFlight != nil {
		n := int32(min(max(*inFlight, -1), 1<<30))
		maxInFlight = &n
	}
	var filterLogic json.RawMessage
	if fields["filterLogic"] != "" {
		if !json.Valid([]byte(fields["filterLogic"])) {
			return ns, ch, fields, &formError{"filterLogic", "filterLogic: not valid JSON"}
		}
		filterLogic = json.RawMessage(fields["filterLogic"])
	}
	var types []string
	for _, t := range strings.Split(fields["eventTypes"], ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	email := fields["contactEmail"]
	if creating {
		ns = usecase.NewSubscription{URL: fields["url"], EventTypes: types, FilterLogic: filterLogic, ContactEmail: email,
			SignatureScheme: fields["signatureScheme"], CallbackKey: fields["callbackKey"], RetryPolicy: &rp, TimeoutMS: timeout,
			RateLimit: rate, MaxInFlight: maxInFlight}
		if ev := fields["event"]; ev != "" { // a registered event from the catalog: "appId topic name"
			parts := strings.SplitN(ev, " ", 3)
			if len(parts) != 3 {
				return ns, ch, fields, &formError{"event", "event: pick one from the catalog"}
			}
			ns.AppID, ns.Topic, ns.EventName = parts[0], parts[1], parts[2]
		}
		return ns, ch, fields, nil
	}
	u := fields["url"]
	ch = usecase.SubscriptionChange{URL: &u, ContactEmail: &email, RetryPolicy: &rp, TimeoutMS: timeout,
		RateLimit: usecase.Optional[float64]{Set: true, Value: rate}, MaxInFlight: usecase.Optional[int32]{Set: true, Value: maxInFlight}}
	if r.PostForm.Has("eventTypes") {
		ch.EventTypes = types
		if ch.EventTypes == nil {
			ch.EventTypes = []string{}
		}
	}
	ch.FilterLogic = filterLogic
	if filterLogic == nil {
		ch.FilterLogic = json.RawMessage("null")
	}
	if fields["clearCallbackKey"] != "" {
		empty := ""
		ch.CallbackKey = &empty
	} else if fields["callbackKey"] != "" {
		k := fields["callbackKey"]
		ch.CallbackKey = &k
	}
	return ns, ch, fields, nil
}

// refuse re-renders the endpoint form with what was typed and why it was refused; an error that
// is not the caller's input goes to fail.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, v *visit, form endpointForm, err error) {
	var fe *formError
	var ue *usecase.Error
	status := http.StatusBadRequest
	switch {
	case errors.As(err, &fe):
		form.FieldError = fe.Field
	case errors.As(err, &ue) && ue.Kind != usecase.Internal && ue.Kind != usecase.Unavailable && ue.Kind != usecase.NotFound:
		form.FieldError, status = ue.Field, statusOf(ue.Kind)
	default:
		h.fail(w, r, v, err)
		return
	}
	if cat, cerr := h.catalog(r, v); cerr == nil {
		form.Catalog = cat
	}
	title := "New endpoint"
	if !form.New {
		title = "Endpoint " + form.Sub.ID
	}
	h.render(w, r, v, status, "endpoint", page{Title: title, Nav: "endpoints", Error: err.Error(), Data: form})
}

func (h *Handler) createEndpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	if v.Session.Narrowed() {
		// It could not see what it made: a narrowed session covers the endpoints it was opened for.
		h.errorPage(w, r, v, http.StatusForbidden, "This session covers some endpoints only: it cannot add new ones.")
		return
	}
	ns, _, fields, err := parseEndpointForm(r, true)
	form := endpointForm{New: true, Fields: fields, Example: "{}"}
	if err != nil {
		h.refuse(w, r, v, form, err)
		return
	}
	created, err := h.UseCases.CreateSubscription(r.Context(), v.caller(), ns)
	if err != nil {
		h.refuse(w, r, v, form, err)
		return
	}
	h.audit(r.Context(), v, "endpoint.create", created.ID, created.URL)
	f := h.formOf(created.Subscription, nil, db.SubscriptionHealth{})
	f.Secret = created.Secret
	if cat, err := h.catalog(r, v); err == nil {
		f.Catalog = cat
	}
	// The secret is shown in this answer only: no redirect, and no-store.
	h.render(w, r, v, http.StatusCreated, "endpoint", page{Title: "Endpoint " + created.ID, Nav: "endpoints",
		Flash: "Endpoint created. Copy its signing secret now: it is not shown again.", SelfPath: Prefix + "/endpoints/" + created.ID, Data: f})
}

func (h *Handler) updateEndpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	sub, err := h.UseCases.GetSubscription(r.Context(), v.caller(), id)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	_, ch, fields, err := parseEndpointForm(r, false)
	form := endpointForm{Sub: sub, Fields: fields, Example: "{}"}
	form.Scheme, form.PublicKey = schemeOf(sub)
	if err != nil {
		h.refuse(w, r, v, form, err)
		return
	}
	if sub.RegisteredEventID.Valid {
		ch.EventTypes = nil // follows its registered event
	}
	if _, err := h.UseCases.UpdateSubscription(r.Context(), v.caller(), id, ch); err != nil {
		h.refuse(w, r, v, form, err)
		return
	}
	h.audit(r.Context(), v, "endpoint.update", id, fields["url"])
	redirect(w, r, Prefix+"/endpoints/"+url.PathEscape(id), "Saved.")
}

func (h *Handler) enableEndpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	h.setActive(w, r, v, true)
}
func (h *Handler) disableEndpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	h.setActive(w, r, v, false)
}

func (h *Handler) setActive(w http.ResponseWriter, r *http.Request, v *visit, active bool) {
	id := r.PathValue("id")
	if _, err := h.UseCases.SetSubscriptionActive(r.Context(), v.caller(), id, active); err != nil {
		h.fail(w, r, v, err)
		return
	}
	action, note := "endpoint.disable", "Disabled: nothing is sent to it until you enable it."
	if active {
		action, note = "endpoint.enable", "Enabled."
	}
	h.audit(r.Context(), v, action, id, "")
	redirect(w, r, Prefix+"/endpoints/"+url.PathEscape(id), note)
}

func (h *Handler) deleteEndpoint(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	if err := h.UseCases.DeleteSubscription(r.Context(), v.caller(), id); err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "endpoint.delete", id, "")
	redirect(w, r, Prefix+"/endpoints", "Endpoint deleted.")
}

// rotateSecret gives the endpoint a new secret and shows it once; the old one keeps signing for
// 24 hours.
func (h *Handler) rotateSecret(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	rot, err := h.UseCases.RotateSecret(r.Context(), v.caller(), id, "", nil)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "endpoint.rotate-secret", id, "")
	f := h.formOf(rot.Subscription, nil, db.SubscriptionHealth{})
	if cat, err := h.catalog(r, v); err == nil {
		f.Catalog = cat
	}
	f.Secret = rot.Secret
	note := "New secret made. Copy it now: it is not shown again. The old one keeps signing for 24 hours."
	if rot.Secret == "" {
		note = "New key pair made; the public key below is the new one. The old key keeps signing for 24 hours."
	}
	h.render(w, r, v, http.StatusOK, "endpoint", page{Title: "Endpoint " + id, Nav: "endpoints", Flash: note,
		SelfPath: Prefix + "/endpoints/" + id, Data: f})
}

// testSend sends a test of an event type to one endpoint and answers with a link to it (a
// fragment for htmx, else a redirect to the delivery).
func (h *Handler) testSend(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	if id == "" {
		id = r.PostFormValue("endpoint")
	}
	var data json.RawMessage
	if d := strings.TrimSpace(r.PostFormValue("data")); d != "" {
		data = json.RawMessage(d)
	}
	ts, err := h.UseCases.SendTest(r.Context(), v.caller(), id, r.PostFormValue("eventType"), data)
	if r.Header.Get("HX-Request") == "true" {
		res := map[string]any{}
		if err != nil {
			var ue *usecase.Error
			if !errors.As(err, &ue) || ue.Kind == usecase.Internal {
				h.Log.Error("portal test send", "subscription_id", id, "error", err)
				err = errors.New("the test could not be sent; try again shortly")
			}
			res["Error"] = err.Error()
		} else {
			h.audit(r.Context(), v, "endpoint.test", id, ts.Event.Type)
			res["Delivery"] = ts.Delivery.ID
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = h.pages["fragments"].ExecuteTemplate(w, "test-result", res)
		return
	}
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "endpoint.test", id, ts.Event.Type)
	redirect(w, r, Prefix+"/deliveries/"+url.PathEscape(ts.Delivery.ID), "Test sent.")
}

func (h *Handler) retryDelivery(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	if _, err := h.ownDelivery(r, v); err != nil {
		h.fail(w, r, v, err)
		return
	}
	if _, err := h.UseCases.RetryDelivery(r.Context(), v.caller(), id, "asked in the portal"); err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "delivery.retry", id, "")
	redirect(w, r, Prefix+"/deliveries/"+url.PathEscape(id), "Retrying now.")
}

func (h *Handler) cancelDelivery(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	if _, err := h.ownDelivery(r, v); err != nil {
		h.fail(w, r, v, err)
		return
	}
	if _, err := h.UseCases.CancelDelivery(r.Context(), v.caller(), id, "cancelled in the portal"); err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "delivery.cancel", id, "")
	redirect(w, r, Prefix+"/deliveries/"+url.PathEscape(id), "Cancelled.")
}

func (h *Handler) replayDelivery(w http.ResponseWriter, r *http.Request, v *visit) {
	id := r.PathValue("id")
	if _, err := h.ownDelivery(r, v); err != nil {
		h.fail(w, r, v, err)
		return
	}
	nd, err := h.UseCases.ReplayDelivery(r.Context(), v.caller(), id)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "delivery.replay", id, nd.ID)
	redirect(w, r, Prefix+"/deliveries/"+url.PathEscape(nd.ID), "Replaying: this is the new delivery.")
}

// recoverFailures replays every failure since a time (of one endpoint, or all the session sees).
func (h *Handler) recoverFailures(w http.ResponseWriter, r *http.Request, v *visit) {
	since := strings.TrimSpace(r.PostFormValue("since"))
	t, err := time.Parse("2006-01-02T15:04", since) // <input type=datetime-local>, read as UTC
	if err != nil {
		if t, err = time.Parse(time.RFC3339, since); err != nil {
			h.errorPage(w, r, v, http.StatusBadRequest, "since: a date and time")
			return
		}
	}
	req := usecase.RecoverRequest{Since: t.UTC().Format(time.RFC3339Nano), SubscriptionID: r.PostFormValue("endpoint")}
	op, _, err := h.UseCases.Recover(r.Context(), v.caller(), req)
	if err != nil {
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "deliveries.recover", op.ID, "since "+req.Since)
	redirect(w, r, Prefix+"/operations/"+url.PathEscape(op.ID), "")
}

// setOperational sets (or clears) where the app's operational webhooks go.
func (h *Handler) setOperational(w http.ResponseWriter, r *http.Request, v *visit) {
	if v.Session.Narrowed() {
		h.errorPage(w, r, v, http.StatusForbidden, "This session covers some endpoints only, not the app's operational webhooks.")
		return
	}
	u := strings.TrimSpace(r.PostFormValue("operationsUrl"))
	if err := h.setOperationsURL(r, v, u); err != nil {
		var ue *usecase.Error
		if errors.As(err, &ue) && ue.Kind == usecase.Invalid {
			h.render(w, r, v, http.StatusBadRequest, "operational", page{Title: "Operational webhooks", Nav: "operational",
				Error: err.Error(), Data: map[string]any{"URL": u}})
			return
		}
		h.fail(w, r, v, err)
		return
	}
	h.audit(r.Context(), v, "app.operations-url", v.App.ID, u)
	redirect(w, r, Prefix+"/operational", "Saved.")
}

// setOperationsURL changes the app's operations URL, checked by the SSRF guard ("" stops them).
// The use-case layer has no use case for it yet (the REST API's PATCH /v1/apps/{id} does the same
// two steps): the guard's check is the use case's own.
func (h *Handler) setOperationsURL(r *http.Request, v *visit, u string) error {
	if v.Session.ReadOnly {
		return &UserError{Status: http.StatusForbidden, Message: "This session is read-only."}
	}
	if u != "" {
		if err := h.UseCases.CheckTarget(r.Context(), "operationsUrl", u); err != nil {
			return err
		}
	}
	_, err := h.Repo.SetOperationsURL(r.Context(), v.App.ID, u)
	return err
}

// filterResult says whether a filter matches an example payload.
func filterResult(rule, eventType, topic, example string) map[string]any {
	res := map[string]any{}
	f, err := filter.Compile(json.RawMessage(rule))
	if err != nil {
		res["Error"] = "The filter is not valid: " + err.Error()
		return res
	}
	if !json.Valid([]byte(example)) {
		res["Error"] = "The example is not valid JSON."
		return res
	}
	ok, err := f.Match(eventType, topic, json.RawMessage(example))
	if err != nil {
		res["Error"] = "The filter failed on this example: " + err.Error()
		return res
	}
	res["Match"] = ok
	return res
}

// schemeOf says how a subscription signs, and its public key for v1a.
func schemeOf(sub db.Subscription) (scheme, publicKey string) {
	if signature.IsSigningKey(sub.Secret) {
		pk, _ := signature.PublicKey(sub.Secret)
		return usecase.SchemeEd25519, pk
	}
	return usecase.SchemeHMAC, ""
}
