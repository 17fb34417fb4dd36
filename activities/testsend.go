package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/hookd/hookd/db"
)

// testTarget is the one delivery of a test send (an event of kind test): stored with the event by
// the API, to the subscription it names, sent like any delivery to that subscription.
func (a *Activities) testTarget(ctx context.Context, ev db.Event) (sendTarget, db.Delivery, error) {
	d, err := a.Repo.TestDelivery(ctx, ev.ID)
	if errors.Is(err, db.ErrNotFound) {
		return sendTarget{}, db.Delivery{}, temporal.NewNonRetryableApplicationError("test send "+ev.ID+" has no delivery", ErrTypeNotFound, err)
	}
	if err != nil {
		return sendTarget{}, db.Delivery{}, err
	}
	sub, err := a.Repo.GetSubscription(ctx, db.AnyApp(), d.SubscriptionID.String)
	if errors.Is(err, db.ErrNotFound) {
		return sendTarget{}, db.Delivery{}, temporal.NewNonRetryableApplicationError("subscription "+d.SubscriptionID.String+" does not exist", ErrTypeNotFound, err)
	}
	if err != nil {
		return sendTarget{}, db.Delivery{}, fmt.Errorf("test send %s: %w", ev.ID, err)
	}
	var apiPath string
	if sub.RegisteredEventID.Valid {
		re, err := a.Repo.RegisteredEventByID(ctx, sub.RegisteredEventID.Int64)
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return sendTarget{}, db.Delivery{}, fmt.Errorf("test send %s: %w", ev.ID, err)
		}
		apiPath = re.GetAPIPath
	}
	return subscriptionTarget(a.Config, sub, apiPath), d, nil
}
