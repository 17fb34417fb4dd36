package activities

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
)

// NotifyFailure e-mails the subscription's contact that a delivery gave up, with the reason and how
// to replay it. It sends once per delivery: the ledger remembers that it went out.
func (a *Activities) NotifyFailure(ctx context.Context, in NotifyInput) error {
	d, err := a.Repo.GetDelivery(ctx, db.AnyApp(), in.DeliveryID)
	if err != nil {
		return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
	}
	if d.NotifiedAt.Valid || d.Status != delivery.StatusFailed {
		return nil // sent already, or the delivery did not fail after all
	}
	ev, err := a.Repo.GetEvent(ctx, db.AnyApp(), d.EventID)
	if err != nil {
		return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
	}
	if !callbacks.IsOperational(ev) {
		at := time.Now()
		if d.FinishedAt.Valid {
			at = d.FinishedAt.Time
		}
		if err := a.emit(ctx, d.AppID, callbacks.OpDeliveryFailed, d.ID, callbacks.DeliveryData(d, ev, at)); err != nil {
			return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
		}
	}
	var sub db.Subscription
	if d.SubscriptionID.Valid {
		if sub, err = a.Repo.GetSubscription(ctx, db.AnyApp(), d.SubscriptionID.String); err != nil {
			return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
		}
	}
	to, err := a.contact(ctx, sub, d.AppID)
	if err != nil {
		return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
	}
	if to == "" {
		a.Log.Warn("delivery failed and nobody to tell", "delivery_id", d.ID, "subscription_id", sub.ID)
		return nil
	}
	api := a.publicURL()
	var b strings.Builder
	fmt.Fprintf(&b, "hookd could not deliver event %s (%s) to %s.\n\n", ev.ClientID, ev.Type, d.URL)
	fmt.Fprintf(&b, "Reason:       %s\n", d.LastError)
	if d.LastStatus.Valid {
		fmt.Fprintf(&b, "Last status:  HTTP %d\n", d.LastStatus.Int32)
	}
	fmt.Fprintf(&b, "Attempts:     %d\n", d.Attempts)
	fmt.Fprintf(&b, "Event:        %s\n", ev.ClientID)
	fmt.Fprintf(&b, "Delivery:     %s\n", d.ID)
	if sub.ID != "" {
		fmt.Fprintf(&b, "Subscription: %s\n", sub.ID)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "To send it again once the receiver is fixed:\n\n  curl -X POST -H 'Authorization: Bearer <your API key>' %s/v1/deliveries/%s/replay\n\n", api, d.ID)
	if d.WorkflowID != "" && a.Config.TemporalUIURL != "" {
		kept := ""
		if a.HistoryRetention > 0 {
			kept = fmt.Sprintf(" (kept until %s, then the delivery's ledger in hookd is the record)", time.Now().Add(a.HistoryRetention).UTC().Format("2006-01-02 15:04 MST"))
		}
		fmt.Fprintf(&b, "History in the Temporal Web UI%s:\n  %s/namespaces/%s/workflows/%s\n", kept, strings.TrimRight(a.Config.TemporalUIURL, "/"),
			url.PathEscape(a.Config.TemporalNamespace), url.PathEscape(d.WorkflowID))
	}
	if err := a.Mail.Send(ctx, to, fmt.Sprintf("[hookd] delivery failed: %s to %s", ev.Type, d.URL), b.String()); err != nil {
		return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
	}
	if _, err := a.Repo.MarkNotified(ctx, d.ID); err != nil {
		return fmt.Errorf("notify %s: %w", in.DeliveryID, err)
	}
	return nil
}

// notifyNow sends a failed delivery's e-mails right away, within the attempt that closed it, and
// reports whether they all went out; if not, the workflow sends them with activities that retry.
func (a *Activities) notifyNow(ctx context.Context, d db.Delivery, disabled bool) bool {
	budget := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-time.Second)
	}
	if budget <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := a.NotifyFailure(ctx, NotifyInput{DeliveryID: d.ID}); err != nil {
		a.Log.Warn("failure e-mail deferred", "delivery_id", d.ID, "error", err)
		return false
	}
	if disabled {
		if err := a.NotifyDisabled(ctx, d.SubscriptionID.String); err != nil {
			a.Log.Warn("disabled e-mail deferred", "delivery_id", d.ID, "error", err)
			return false
		}
	}
	return true
}

// NotifyDisabled e-mails a subscription's contact that it was disabled, and how to enable it again.
func (a *Activities) NotifyDisabled(ctx context.Context, subscriptionID string) error {
	sub, err := a.Repo.GetSubscription(ctx, db.AnyApp(), subscriptionID)
	if err != nil {
		return fmt.Errorf("notify disabled %s: %w", subscriptionID, err)
	}
	if !sub.Active {
		cause := "failures"
		if strings.Contains(sub.DisabledReason, "410") {
			cause = "gone"
		}
		if err := a.emit(ctx, sub.AppID, callbacks.OpSubscriptionDisabled, callbacks.SubscriptionChangeKey(sub), callbacks.SubscriptionData(sub, cause)); err != nil {
			return fmt.Errorf("notify disabled %s: %w", subscriptionID, err)
		}
	}
	to, err := a.contact(ctx, sub, sub.AppID)
	if err != nil || to == "" {
		return err
	}
	body := fmt.Sprintf("Subscription %s to %s was disabled: %s.\n\nNo more events will be sent to it. Re-enable it with:\n\n  curl -X POST -H 'Authorization: Bearer <your API key>' %s/v1/subscriptions/%s/enable\n",
		sub.ID, sub.URL, sub.DisabledReason, a.publicURL(), sub.ID)
	if err := a.Mail.Send(ctx, to, "[hookd] subscription disabled: "+sub.URL, body); err != nil {
		return fmt.Errorf("notify disabled %s: %w", sub.ID, err)
	}
	return nil
}

// contact is who hears about a subscription: its contact, else its app's (one-off callbacks have
// no subscription, only the app).
func (a *Activities) contact(ctx context.Context, sub db.Subscription, appID string) (string, error) {
	if sub.ContactEmail != "" {
		return sub.ContactEmail, nil
	}
	app, err := a.Repo.GetApp(ctx, appID)
	if err != nil {
		return "", err
	}
	return app.ContactEmail, nil
}

func (a *Activities) publicURL() string {
	if u := strings.TrimRight(a.Config.PublicURL, "/"); u != "" {
		return u
	}
	return "http://" + a.Config.HTTPAddr
}
