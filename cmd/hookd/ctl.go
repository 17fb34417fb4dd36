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
  trace EVENT_ID                                                    print the event's trace from Jaeger (HOOKD_JAEGER_URL)`

var ctlCommands = map[string]func(context.Context, *apiClient, []string) error{
	"deliveries":   listDeliveriesCmd,
	"delivery":     showDeliveryCmd,
	"replay":       replayCmd,
	"replay-event": replayEventCmd,
	"cancel":       func(ctx context.Context, c *apiClient, a []string) error { return signalCmd(ctx, c, "cancel", a) },
	"retry":        func(ctx context.Context, c *apiClient, a []string) error { return signalCmd(ctx, c, "retry", a) },
	"tail":         tailCmd,
	"trace":        traceCmd,
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
	if *failed {
		ds, err := deliveriesMatching(ctx, c, "failed", *sub, "")
		if err != nil {
			return err
		}
		for _, d := range ds {
			ids = append(ids, d.Id)
		}
	}
	if len(ids) == 0 {
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
	fmt.Fprintf(c.out, "replayed %d of %d deliveries\n", len(ids)-len(errs), len(ids))
	return errors.Join(errs...)
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
