package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Operator commands talk to the REST API like any client: HOOKD_API_URL and HOOKD_API_KEY.
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

type apiClient struct {
	base, key string
	http      *http.Client
	out       io.Writer
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
	return &apiClient{base: strings.TrimRight(base, "/"), key: key, http: &http.Client{Timeout: 30 * time.Second}, out: os.Stdout}, nil
}

// do calls the API and decodes the "data" member into out.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		var p struct{ Detail string }
		_ = json.Unmarshal(raw, &p)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, p.Detail)
	}
	if out == nil {
		return nil
	}
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return json.Unmarshal(env.Data, out)
}

type deliveryRow struct {
	ID             string    `json:"id"`
	EventID        string    `json:"eventId"`
	SubscriptionID string    `json:"subscriptionId"`
	URL            string    `json:"url"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	Replay         int       `json:"replay"`
	LastStatus     int       `json:"lastStatus"`
	LastError      string    `json:"lastError"`
	CreatedAt      time.Time `json:"createdAt"`
	Links          struct {
		TemporalUI string `json:"temporalUi"`
	} `json:"links"`
}

// deliveriesMatching pages through GET /v1/deliveries.
func deliveriesMatching(ctx context.Context, c *apiClient, status, sub, since string) ([]deliveryRow, error) {
	var all []deliveryRow
	page := ""
	for {
		q := url.Values{"limit": {"500"}}
		for k, v := range map[string]string{"status": status, "subscription": sub, "since": since, "page": page} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var res struct {
			Deliveries []deliveryRow
			Meta       struct {
				NextPage    string
				HasNextPage bool
			}
		}
		if err := c.do(ctx, "GET", "/v1/deliveries?"+q.Encode(), nil, &res); err != nil {
			return nil, err
		}
		all = append(all, res.Deliveries...)
		if !res.Meta.HasNextPage {
			return all, nil
		}
		page = res.Meta.NextPage
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
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.EventID, d.Status, d.Attempts, oneLine(d.LastError, 60), d.URL)
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
	var d struct {
		deliveryRow
		Ledger []struct {
			Attempt        int
			ResponseStatus int
			Error          string
			DurationMS     int64
			StartedAt      time.Time
		} `json:"ledger"`
	}
	if err := c.do(ctx, "GET", "/v1/deliveries/"+url.PathEscape(args[0]), nil, &d); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "delivery %s of event %s to %s\nstatus %s, replay %d\nTemporal UI: %s\n\n", d.ID, d.EventID, d.URL, d.Status, d.Replay, d.Links.TemporalUI)
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ATTEMPT\tSTARTED\tSTATUS\tDURATION\tERROR")
	for _, a := range d.Ledger {
		fmt.Fprintf(w, "%d\t%s\t%d\t%dms\t%s\n", a.Attempt, a.StartedAt.Format(time.RFC3339), a.ResponseStatus, a.DurationMS, oneLine(a.Error, 80))
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
			ids = append(ids, d.ID)
		}
	}
	if len(ids) == 0 {
		return errors.New("nothing to replay: name delivery ids or use -failed")
	}
	var errs []error
	for i, id := range ids {
		var d deliveryRow
		if err := c.do(ctx, "POST", "/v1/deliveries/"+url.PathEscape(id)+"/replay", nil, &d); err != nil {
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
	var res struct {
		RequestID string
		Replays   []deliveryRow
	}
	if err := c.do(ctx, "POST", "/v1/events/"+url.PathEscape(args[0])+"/replay", nil, &res); err != nil {
		return err
	}
	for _, d := range res.Replays {
		fmt.Fprintf(c.out, "replay %s to %s\n", d.ID, d.URL)
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
	if err := c.do(ctx, "POST", "/v1/deliveries/"+url.PathEscape(id)+"/"+signal, map[string]string{"reason": *reason}, nil); err != nil {
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
	cursor := *since
	for {
		q := url.Values{"since": {cursor}, "limit": {"500"}}
		if *topic != "" {
			q.Set("topic", *topic)
		}
		if *typ != "" {
			q.Set("eventType", *typ)
		}
		var res struct {
			Events []struct {
				ID, Type, Topic string
				ReceivedAt      time.Time
				Data            json.RawMessage
			}
			Meta struct{ NextCursor string }
		}
		if err := c.do(ctx, "GET", "/v1/events?"+q.Encode(), nil, &res); err != nil {
			return err
		}
		for _, e := range res.Events {
			fmt.Fprintf(c.out, "%s %s %s %s %s\n", e.ReceivedAt.Format(time.RFC3339), e.ID, e.Type, e.Topic, oneLine(string(e.Data), 200))
		}
		if res.Meta.NextCursor != "" {
			cursor = res.Meta.NextCursor
		}
		if len(res.Events) == 500 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}
