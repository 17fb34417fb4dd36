package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/hookd/hookd/apiclient"
)

// eventTypesCmd (hookd event-types) prints the event catalog: every registered event the key's
// app may subscribe to; -schema prints each one's schema and first example too.
func eventTypesCmd(ctx context.Context, c *apiClient, args []string) error {
	fs := flag.NewFlagSet("event-types", flag.ContinueOnError)
	topic := fs.String("topic", "", "only this topic's")
	app := fs.String("app", "", "only this publisher's (app id)")
	full := fs.Bool("schema", false, "print each event's schema and first example")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p := apiclient.ListEventTypesParams{PageSize: ptr(500)}
	if *topic != "" {
		p.Topic = topic
	}
	if *app != "" {
		p.AppId = app
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	if !*full {
		fmt.Fprintln(w, "PUBLISHER\tTOPIC\tNAME\tEVENT TYPE\tSCHEMA\tEXAMPLES\tDEPRECATED\tDESCRIPTION")
	}
	for {
		r, err := c.api.ListEventTypesWithResponse(ctx, &p)
		if err := check("event types", err, r, http.StatusOK); err != nil {
			return err
		}
		for _, e := range r.JSON200.Data.EventTypes {
			if *full {
				printEventType(c, e)
				continue
			}
			dep := ""
			if e.Deprecated {
				dep = "yes " + val(e.DeprecationNote)
			}
			fmt.Fprintf(w, "%s (%s)\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.PublisherName, e.AppId, e.Topic, e.Name, e.EventType,
				yesNo(e.Schema != nil), len(e.Examples), oneLine(dep, 40), oneLine(e.Description, 60))
		}
		if !r.JSON200.Data.Meta.HasNextPage {
			return w.Flush()
		}
		p.Page = &r.JSON200.Data.Meta.NextPage
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printEventType(c *apiClient, e apiclient.EventTypeEntry) {
	fmt.Fprintf(c.out, "%s on %s from %s (%s): event type %s\n", e.Name, e.Topic, e.PublisherName, e.AppId, e.EventType)
	if e.Description != "" {
		fmt.Fprintf(c.out, "  %s\n", e.Description)
	}
	if e.Deprecated {
		fmt.Fprintf(c.out, "  DEPRECATED %s\n", val(e.DeprecationNote))
	}
	if e.Schema != nil {
		b, _ := json.MarshalIndent(e.Schema, "  ", "  ")
		fmt.Fprintf(c.out, "  schema: %s\n", b)
	}
	if len(e.Examples) > 0 {
		b, _ := json.MarshalIndent(e.Examples[0], "  ", "  ")
		fmt.Fprintf(c.out, "  example: %s\n", b)
	}
	fmt.Fprintln(c.out)
}

// testSendCmd (hookd test-send SUBSCRIPTION_ID [-type T] [-data JSON]) sends a subscription a
// test and, with -wait, follows its delivery to the end.
func testSendCmd(ctx context.Context, c *apiClient, args []string) error {
	fs := flag.NewFlagSet("test-send", flag.ContinueOnError)
	eventType := fs.String("type", "", "event type (may be left out when the subscription has one)")
	raw := fs.String("data", "", "the data to send, as JSON (default: the event type's first example)")
	wait := fs.Bool("wait", true, "wait for the delivery to end and print its outcome")
	// The subscription id may come before or after the flags.
	var id string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" {
		return errors.New("usage: hookd test-send SUBSCRIPTION_ID [-type T] [-data JSON] [-wait=false]")
	}
	var body apiclient.TestSendRequest
	if *eventType != "" {
		body.EventType = eventType
	}
	if *raw != "" {
		var v apiclient.JSONValue
		if err := json.Unmarshal([]byte(*raw), &v); err != nil {
			return fmt.Errorf("-data: %w", err)
		}
		body.Data = &v
	}
	r, err := c.api.SendTestDeliveryWithResponse(ctx, id, body)
	if err := check("test send", err, r, http.StatusAccepted); err != nil {
		return err
	}
	d := r.JSON202.Data
	fmt.Fprintf(c.out, "test delivery %s (event %s, %s) to subscription %s\n", d.DeliveryId, d.EventId, d.EventType, d.SubscriptionId)
	if !*wait {
		return nil
	}
	return followDelivery(ctx, c, d.DeliveryId)
}

// followDelivery waits (at most two minutes) for a delivery to end, then shows it with its
// attempts.
func followDelivery(ctx context.Context, c *apiClient, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		r, err := c.api.GetDeliveryWithResponse(ctx, id)
		if err := check("delivery "+id, err, r, http.StatusOK); err != nil {
			return err
		}
		if r.JSON200.Data.Status != apiclient.DeliveryStatusPending {
			return showDeliveryCmd(ctx, c, []string{id})
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(c.out, "still pending after 2 minutes: hookd delivery %s\n", id)
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
