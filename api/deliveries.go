package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/usecase"
)

// listDeliveries lists the caller's deliveries: ?status=failed&subscription=&since=&limit=&page=.
func (s *Server) listDeliveries(c *gin.Context) {
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	q := usecase.DeliveryQuery{Status: c.Query("status"), SubscriptionID: c.Query("subscription"), Page: c.Query("page"), Limit: limit}
	if since := c.Query("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			problem(c, http.StatusBadRequest, "since: an RFC 3339 time")
			return
		}
		q.Since = t
	}
	ds, next, err := s.cases().ListDeliveries(c.Request.Context(), callerOf(c), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.deliveryView(d))
	}
	data(c, http.StatusOK, gin.H{"deliveries": out, "meta": pageMeta(next)})
}

// getDelivery returns a delivery and its attempt ledger, in full to its owner and as progress to
// the publisher of its event.
func (s *Server) getDelivery(c *gin.Context) {
	d, err := s.cases().GetDelivery(c.Request.Context(), callerOf(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ledger := make([]any, 0, len(d.Ledger))
	for _, a := range d.Ledger {
		ledger = append(ledger, attemptFor(d.Owner, a))
	}
	var v gin.H
	if d.Owner {
		v = s.deliveryViewOf(d.Delivery, d.OwnWorkflow)
	} else {
		v = s.deliveryFor(callerOf(c).App.ID, d.Delivery)
	}
	v["ledger"] = ledger
	data(c, http.StatusOK, v)
}

type signalRequest struct {
	Reason string `json:"reason"`
}

// cancelDelivery ends a pending delivery as cancelled.
func (s *Server) cancelDelivery(c *gin.Context) { s.signalDelivery(c, delivery.SignalCancel) }

// retryDelivery makes a pending delivery's next attempt now.
func (s *Server) retryDelivery(c *gin.Context) { s.signalDelivery(c, delivery.SignalRetry) }

// signalDelivery sends cancel or retry to a pending delivery's workflow.
func (s *Server) signalDelivery(c *gin.Context, signal string) {
	var req signalRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	var (
		d   db.Delivery
		err error
	)
	if signal == delivery.SignalCancel {
		d, err = s.cases().CancelDelivery(c.Request.Context(), callerOf(c), c.Param("id"), req.Reason)
	} else {
		d, err = s.cases().RetryDelivery(c.Request.Context(), callerOf(c), c.Param("id"), req.Reason)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusAccepted, gin.H{"id": d.ID, "signal": signal, "workflowId": d.WorkflowID,
		"links": gin.H{"temporalUi": s.uiLink(d.WorkflowID)}})
}

// replayDelivery sends a finished delivery again as a new attempt series.
func (s *Server) replayDelivery(c *gin.Context) {
	nd, err := s.cases().ReplayDelivery(c.Request.Context(), callerOf(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusAccepted, s.deliveryView(nd))
}

// replayEvent replays the latest delivery to each of an event's targets.
func (s *Server) replayEvent(c *gin.Context) {
	var req struct {
		CallbackURL string `json:"callbackUrl"`
	}
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	who := callerOf(c)
	r, err := s.cases().ReplayEvent(c.Request.Context(), who, c.Param("id"), callbackURL(c, req.CallbackURL))
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(r.Replays))
	for _, nd := range r.Replays {
		out = append(out, s.deliveryFor(who.App.ID, nd))
	}
	data(c, http.StatusAccepted, gin.H{"requestId": r.RequestID, "eventId": r.Event.ClientID, "replays": out, "skipped": r.Skipped})
}
