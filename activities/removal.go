package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/hookd/hookd/callbacks"
	"github.com/hookd/hookd/db"
)

// removalPage is how many rows one step of the removal follow-up handles.
const removalPage = 200

// CancelRemovedDeliveries asks the workflow of every pending delivery to a subscription of a
// removed registered event to end it as cancelled with the subscription's disabled reason. A
// delivery still in its first attempt has no workflow yet: the retry workflow it may get finds the
// subscription disabled and ends it the same way. It returns how many it signalled.
func (a *Activities) CancelRemovedDeliveries(ctx context.Context, registeredEventID int64) (int, error) {
	after := ""
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &after)
	}
	n := 0
	for {
		ds, err := a.Repo.PendingDeliveriesOfRemoved(ctx, registeredEventID, after, removalPage)
		if err != nil {
			return n, err
		}
		for _, d := range ds {
			if err := a.Retries.CancelDelivery(ctx, d.WorkflowID, d.Reason); err != nil {
				return n, fmt.Errorf("cancel %s: %w", d.ID, err)
			}
			n++
		}
		if len(ds) < removalPage {
			return n, nil
		}
		after = ds[len(ds)-1].ID
		activity.RecordHeartbeat(ctx, after)
	}
}

// NotifyRemoval e-mails the contact of each subscription to a removed registered event, once: one
// message per address, listing its subscriptions. A subscription is marked told after its message
// went out, so a retry re-sends only what did not.
func (a *Activities) NotifyRemoval(ctx context.Context, registeredEventID int64) (int, error) {
	sent := 0
	for {
		ns, err := a.Repo.RemovalNotices(ctx, registeredEventID, removalPage)
		if err != nil {
			return sent, err
		}
		if len(ns) == 0 {
			return sent, nil
		}
		byContact := map[string][]db.RemovalNotice{}
		for _, n := range ns {
			byContact[n.Contact] = append(byContact[n.Contact], n)
		}
		contacts := make([]string, 0, len(byContact))
		for c := range byContact {
			contacts = append(contacts, c)
		}
		sort.Strings(contacts)
		for _, n := range ns {
			sub := db.Subscription{ID: n.SubscriptionID, AppID: n.AppID, URL: n.URL, DisabledReason: n.Reason, UpdatedAt: n.UpdatedAt}
			if err := a.emit(ctx, n.AppID, callbacks.OpSubscriptionDisabled, n.SubscriptionID+"_removed", callbacks.SubscriptionData(sub, "registry")); err != nil {
				return sent, fmt.Errorf("notify removal of event %d: %w", registeredEventID, err)
			}
		}
		for _, to := range contacts {
			group := byContact[to]
			if to != "" {
				if err := a.Mail.Send(ctx, to, "[hookd] subscription disabled: "+group[0].Reason, a.removalMessage(group)); err != nil {
					return sent, fmt.Errorf("notify removal of event %d: %w", registeredEventID, err)
				}
				sent++
			} else {
				a.Log.Warn("subscriptions disabled and nobody to tell", "registered_event_id", registeredEventID, "subscriptions", len(group))
			}
			ids := make([]string, len(group))
			for i, n := range group {
				ids[i] = n.SubscriptionID
			}
			if err := a.Repo.MarkRemovalNotified(ctx, ids); err != nil {
				return sent, err
			}
		}
		activity.RecordHeartbeat(ctx, sent)
	}
}

func (a *Activities) removalMessage(ns []db.RemovalNotice) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hookd disabled %d of your subscriptions: %s.\n\n", len(ns), ns[0].Reason)
	b.WriteString("Deliveries still pending to them were cancelled; their delivery history is kept.\n\n")
	for _, n := range ns {
		fmt.Fprintf(&b, "  %s  %s\n", n.SubscriptionID, n.URL)
	}
	fmt.Fprintf(&b, "\nThe publisher's current events: %s/v1/apps\n", a.publicURL())
	return b.String()
}
