package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookd/hookd/apiclient"
)

// Operator commands talk to the REST API like any client, through the typed client generated
// from the OpenAPI document: HOOKD_API_URL and HOOKD_API_KEY.
const ctlUsage = `operator commands (HOOKD_API_URL, HOOKD_API_KEY):
  deliveries [-status failed] [-subscription ID] [-since RFC3339]   list deliveries
  delivery ID                                                       show a delivery and its attempts
  replay [-failed [-subscription ID]] [DELIVERY_ID ...]             replay deliveries (with progress)
  replay-event EVENT_ID                                             replay an event to all its subscribers
  cancel ID [-reason TEXT]                                          stop retrying a pending delivery
  retry ID                                                          attempt a pending delivery now
  tail [-topic T] [-type T] [-interval 2s]                          print events as they arrive
  trace EVENT_ID                                                    print the event's trace from Jaeger (HOOKD_JAEGER_URL)
  event-types [-topic T] [-app ID] [-schema]                        the event catalog: what the key's app may subscribe to
  test-send SUBSCRIPTION_ID [-type T] [-data JSON] [-wait=false]    send a subscription a signed test delivery and follow it`

var ctlCommands = map[string]func(context.Context, *apiClient, []string) error{
	"deliveries":   listDeliveriesCmd,
	"delivery":     showDeliveryCmd,
	"replay":       replayCmd,
	"replay-event": replayEventCmd,
	"cancel":       func(ctx context.Context, c *apiClient, a []string) error { return signalCmd(ctx, c, "cancel", a) },
	"retry":        func(ctx context.Context, c *apiClient, a []string) error { return signalCmd(ctx, c, "retry", a) },
	"tail":         tailCmd,
	"trace":        traceCmd,
	"event-types":  eventTypesCmd,
	"test-send":    testSendCmd,
}

// apiClient is the generated client with where the commands write.
type apiClient struct {
	api  *apiclient.ClientWithResponses
	http *http.Client
	out  io.Writer
}

func newAPIClient() (*apiClient, error) {
	base := os.Getenv("HOOKD_API_URL")
	if base == "" {
		addr := os.Getenv("HOOKD_HTTP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		base = "http://" + addr
	}
	key := os.Getenv("HOOKD_API_KEY")
	if key == "" {
		return nil, errors.New("set HOOKD_API_KEY to an app's API key")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	api, err := apiclient.New(strings.TrimRight(base, "/"), key, apiclient.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	return &apiClient{api: api, http: hc, out: os.Stdout}, nil
}

// answer is what every generated response has.
type answer interface{ StatusCode() int }

// check turns a call's error or an answer other than want into an error that says what the API
// said (the problem document's detail).
func check(what string, err error, r answer, want int) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if r.StatusCode() == want {
		return nil
	}
	var p struct{ Detail string }
	// Every generated response keeps the raw answer in its Body field.
	if b := reflect.ValueOf(r).Elem().FieldByName("Body"); b.IsValid() && b.Kind() == reflect.Slice {
		_ = json.Unmarshal(b.Bytes(), &p)
	}
	return fmt.Errorf("%s: %d %s: %s", what, r.StatusCode(), http.StatusText(r.StatusCode()), p.Detail)
}

// deliveriesMatching pages through GET /v1/deliveries.
func deliveriesMatching(ctx context.Context, c *apiClient, status, sub, since string) ([]apiclient.Delivery, error) {
	p := apiclient.ListDeliveriesParams{PageSize: ptr(500)}
	if status != "" {
		p.Status = ptr(apiclient.DeliveryStatus(status))
	}
	if sub != "" {
		p.Subscription = &sub
	}
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return nil, fmt.Errorf("-since: %w", err)
		}
		p.Since = &t
	}
	var all []apiclient.Delivery
	for {
		r, err := c.api.ListDeliveriesWithResponse(ctx, &p)
		if err := check("list deliveries", err, r, http.StatusOK); err != nil {
			return nil, err
		}
		all = append(all, r.JSON200.Data.Deliveries...)
		if !r.JSON200.Data.Meta.HasNextPage {
			return all, nil
		}
		p.Page = &r.JSON200.Data.Meta.NextPage
	}
}

func listDeliveriesCmd(ctx context.Context, c *apiClient, args []string) error {
	fs := flag.NewFlagSet("deliveries", flag.ContinueOnError)
	status := fs.String("status", "", "pending, succeeded, failed or cancelled")
	sub := fs.String("subscription", "", "subscription id")
	since := fs.String("since", "", "RFC 3339 time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ds, err := deliveriesMatching(ctx, c, *status, *sub, *since)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DELIVERY\tEVENT\tSTATUS\tATTEMPTS\tLAST ERROR\tURL")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", d.Id, d.EventId, d.Status, d.Attempts, oneLine(val(d.LastError), 60), val(d.Url))
	}
	return w.Flush()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func showDeliveryCmd(ctx context.Context, c *apiClient, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: hookd delivery ID")
	}
	r, err := c.api.GetDeliveryWithResponse(ctx, args[0])
	if err := check("delivery "+args[0], err, r, http.StatusOK); err != nil {
		return err
	}
	d := r.JSON200.Data
	ui := ""
	if d.Links != nil {
		ui = d.Links.TemporalUi
	}
	fmt.Fprintf(c.out, "delivery %s of event %s to %s\nstatus %s, replay %d\nTemporal UI: %s\n\n", d.Id, d.EventId, val(d.Url), d.Status, d.Replay, ui)
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ATTEMPT\tSTARTED\tSTATUS\tDURATION\tERROR")
	for _, a := range d.Ledger {
		fmt.Fprintf(w, "%d\t%s\t%d\t%dms\t%s\n", a.Attempt, a.StartedAt.Format(time.RFC3339), val(a.ResponseStatus), a.DurationMs, oneLine(val(a.Error), 80))
	}
	return w.Flush()
}

func replayCmd(ctx context.Context, c *apiClient, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	failed := fs.Bool("failed", false, "replay every failed delivery (of -subscription, if given)")
	sub := fs.String("subscription", "", "with -failed: only this subscription's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ids := fs.Args()
	var skips []skip
	if *failed {
		ds, err := deliveriesMatching(ctx, c, "failed", *sub, "")
		if err != nil {
			return err
		}
		var todo []string
		if todo, skips, err = planReplays(ctx, c, ds); err != nil {
			return err
		}
		ids = append(ids, todo...)
		for _, s := range skips {
			fmt.Fprintf(c.out, "skipped %s: %s\n", s.id, s.why)
		}
	}
	if len(ids) == 0 {
		if len(skips) > 0 {
			fmt.Fprintf(c.out, "replayed 0 deliveries; skipped %d failed ones that need no replay or cannot succeed\n", len(skips))
			return nil
		}
		return errors.New("nothing to replay: name delivery ids or use -failed")
	}
	var errs []error
	for i, id := range ids {
		r, err := c.api.ReplayDeliveryWithResponse(ctx, id, &apiclient.ReplayDeliveryParams{})
		if err := check("replay "+id, err, r, http.StatusAccepted); err != nil {
			errs = append(errs, err)
		}
		// A progress line, rewritten in place.
		fmt.Fprintf(os.Stderr, "\rreplaying %d/%d (%d failed)", i+1, len(ids), len(errs))
	}
	fmt.Fprintf(os.Stderr, "\n")
	fmt.Fprintf(c.out, "replayed %d of %d deliveries", len(ids)-len(errs), len(ids))
	if len(skips) > 0 {
		fmt.Fprintf(c.out, "; skipped %d failed ones that need no replay or cannot succeed", len(skips))
	}
	fmt.Fprintln(c.out)
	return errors.Join(errs...)
}

// skip is a failed delivery replay -failed leaves alone, and why.
type skip struct{ id, why string }

// planReplays picks, among failed deliveries, those a replay can help: not one that was replayed
// already (by a replay or a recover: its latest replay is what counts, and is in the list itself
// if it failed too), nor one whose subscription is disabled or deleted (its replay would fail at
// once). It reads each event's deliveries and each subscription once.
func planReplays(ctx context.Context, c *apiClient, ds []apiclient.Delivery) (todo []string, skips []skip, err error) {
	target := func(d apiclient.Delivery) string {
		if d.SubscriptionId != nil {
			return *d.SubscriptionId
		}
		return "url " + val(d.Url) // a one-off callback
	}
	latest := map[string]map[string]apiclient.Delivery{} // event id → target → its latest replay
	subs := map[string]string{}                          // subscription id → why it cannot be sent to ("" if it can)
	for _, d := range ds {
		byTarget, ok := latest[d.EventId]
		if !ok {
			if byTarget, err = latestReplays(ctx, c, d, target); err != nil {
				return nil, nil, err
			}
			latest[d.EventId] = byTarget
		}
		l, ok := byTarget[target(d)]
		if !ok && d.SubscriptionId != nil {
			// The event is another app's (this app subscribes to it): its replays are among the
			// subscription's deliveries since.
			if l, err = latestOfSubscription(ctx, c, d); err != nil {
				return nil, nil, err
			}
			ok = l.Id != ""
		}
		if ok && l.Replay > d.Replay {
			skips = append(skips, skip{d.Id, fmt.Sprintf("replayed already: replay %d (%s) is %s", l.Replay, l.Id, l.Status)})
			continue
		}
		if d.SubscriptionId != nil {
			why, ok := subs[*d.SubscriptionId]
			if !ok {
				if why, err = subscriptionBlocked(ctx, c, *d.SubscriptionId); err != nil {
					return nil, nil, err
				}
				subs[*d.SubscriptionId] = why
			}
			if why != "" {
				skips = append(skips, skip{d.Id, why})
				continue
			}
		}
		todo = append(todo, d.Id)
	}
	return todo, skips, nil
}

// latestReplays reads the deliveries of d's event (the caller's own) and keeps each target's
// latest. It is empty when the caller did not publish d's event (the event found by that id, if
// any, is another one: it does not hold d).
func latestReplays(ctx context.Context, c *apiClient, d apiclient.Delivery, target func(apiclient.Delivery) string) (map[string]apiclient.Delivery, error) {
	out := map[string]apiclient.Delivery{}
	p := apiclient.ListEventDeliveriesParams{PageSize: ptr(100)}
	holdsD := false
	defer func() {
		if !holdsD {
			clear(out)
		}
	}()
	for {
		r, err := c.api.ListEventDeliveriesWithResponse(ctx, d.EventId, &p)
		if err == nil && r.StatusCode() == http.StatusNotFound {
			return out, nil
		}
		if err := check("deliveries of event "+d.EventId, err, r, http.StatusOK); err != nil {
			return nil, err
		}
		for _, x := range r.JSON200.Data.Deliveries {
			holdsD = holdsD || x.Id == d.Id
		}
		for _, x := range r.JSON200.Data.Deliveries {
			if x.SubscriberAppId != nil {
				continue // another app's delivery of an event this app published
			}
			if l, ok := out[target(x)]; !ok || x.Replay > l.Replay {
				out[target(x)] = x
			}
		}
		if !r.JSON200.Data.Meta.HasNextPage {
			return out, nil
		}
		p.Page = &r.JSON200.Data.Meta.NextPage
	}
}

// latestOfSubscription is the latest replay of d among its subscription's deliveries created since
// d (zero when there is none).
func latestOfSubscription(ctx context.Context, c *apiClient, d apiclient.Delivery) (apiclient.Delivery, error) {
	ds, err := deliveriesMatching(ctx, c, "", *d.SubscriptionId, time.Time(d.CreatedAt).Format(time.RFC3339Nano))
	if err != nil {
		return apiclient.Delivery{}, err
	}
	var l apiclient.Delivery
	for _, x := range ds {
		if x.EventId == d.EventId && x.Replay > d.Replay && x.Replay > l.Replay {
			l = x
		}
	}
	return l, nil
}

// subscriptionBlocked says why deliveries to a subscription cannot succeed now ("" if they can).
func subscriptionBlocked(ctx context.Context, c *apiClient, id string) (string, error) {
	r, err := c.api.GetSubscriptionWithResponse(ctx, id)
	if err == nil && r.StatusCode() == http.StatusNotFound {
		return "its subscription " + id + " was deleted", nil
	}
	if err := check("subscription "+id, err, r, http.StatusOK); err != nil {
		return "", err
	}
	if sub := r.JSON200.Data; !sub.Active {
		why := "its subscription " + id + " is disabled"
		if reason := val(sub.DisabledReason); reason != "" {
			why += " (" + reason + ")"
		}
		return why + ": enable it (POST /v1/subscriptions/" + id + "/enable), then replay", nil
	}
	return "", nil
}

func replayEventCmd(ctx context.Context, c *apiClient, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: hookd replay-event EVENT_ID")
	}
	r, err := c.api.ReplayEventWithBodyWithResponse(ctx, args[0], &apiclient.ReplayEventParams{}, "application/json", nil)
	if err := check("replay event "+args[0], err, r, http.StatusAccepted); err != nil {
		return err
	}
	for _, d := range r.JSON202.Data.Replays {
		fmt.Fprintf(c.out, "replay %s to %s\n", d.Id, val(d.Url))
	}
	return nil
}

func signalCmd(ctx context.Context, c *apiClient, signal string, args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: hookd %s ID [-reason TEXT]", signal)
	}
	id := args[0]
	fs := flag.NewFlagSet(signal, flag.ContinueOnError)
	reason := fs.String("reason", "", "why (kept in the workflow history)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	req := apiclient.SignalRequest{Reason: reason}
	var err error
	if signal == "cancel" {
		var r *apiclient.CancelDeliveryResponse
		r, err = c.api.CancelDeliveryWithResponse(ctx, id, req)
		err = check(signal+" "+id, err, r, http.StatusAccepted)
	} else {
		var r *apiclient.RetryDeliveryResponse
		r, err = c.api.RetryDeliveryWithResponse(ctx, id, req)
		err = check(signal+" "+id, err, r, http.StatusAccepted)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "sent %s to delivery %s\n", signal, id)
	return nil
}

func tailCmd(ctx context.Context, c *apiClient, args []string) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	topic := fs.String("topic", "", "only this topic")
	typ := fs.String("type", "", "only this event type")
	every := fs.Duration("interval", 2*time.Second, "poll interval")
	since := fs.String("since", time.Now().UTC().Format(time.RFC3339Nano), "start at this time (RFC 3339) or cursor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	const page = 500
	p := apiclient.PollEventsParams{Since: since, PageSize: ptr(page)}
	if *topic != "" {
		p.Topic = topic
	}
	if *typ != "" {
		p.EventType = typ
	}
	for {
		r, err := c.api.PollEventsWithResponse(ctx, &p)
		if err := check("poll events", err, r, http.StatusOK); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range r.JSON200.Data.Events {
			data, _ := json.Marshal(e.Data)
			fmt.Fprintf(c.out, "%s %s %s %s %s\n", e.ReceivedAt.Format(time.RFC3339), e.Id, e.Type, e.Topic, oneLine(string(data), 200))
		}
		if next := r.JSON200.Data.Meta.NextCursor; next != "" {
			p.Since = &next
		}
		if len(r.JSON200.Data.Events) == page {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

func ptr[T any](v T) *T { return &v }

// val is *p, or the zero value when p is nil.
func val[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
