package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
)

// listDeliveries lists the caller's deliveries: ?status=failed&subscription=&since=&limit=&page=.
func (s *Server) listDeliveries(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	f := db.DeliveryFilter{AppID: app.ID, Status: c.Query("status"), SubscriptionID: c.Query("subscription"), Limit: limit + 1}
	switch f.Status {
	case "", delivery.StatusPending, delivery.StatusSucceeded, delivery.StatusFailed, delivery.StatusCancelled:
	default:
		problem(c, http.StatusBadRequest, "status: pending, succeeded, failed or cancelled")
		return
	}
	if since := c.Query("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			problem(c, http.StatusBadRequest, "since: an RFC 3339 time")
			return
		}
		f.Since = t
	}
	if p := c.Query("page"); p != "" {
		id, nanos, err := decodeCursor(p)
		if err != nil {
			problem(c, http.StatusBadRequest, "page: not a cursor returned by this endpoint")
			return
		}
		f.AfterID, f.AfterCreated = id, time.Unix(0, nanos)
	}
	ds, err := s.Repo.ListDeliveries(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	ds, next := trimPage(ds, limit, func(d db.Delivery) string { return encodeCursor(d.ID, d.CreatedAt.UnixNano()) })
	out := make([]gin.H, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.deliveryView(d))
	}
	data(c, http.StatusOK, gin.H{"deliveries": out, "meta": pageMeta(next)})
}
