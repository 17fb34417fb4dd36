package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hookd/hookd/activities"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/signature"
	"github.com/hookd/hookd/workflows"
)

// maxEventReplay is the most targets a whole-event replay covers.
const maxEventReplay = 2000

type signalRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) cancelDelivery(c *gin.Context) {
	s.signalDelivery(c, workflows.SignalCancel, "cancel")
}
func (s *Server) retryDelivery(c *gin.Context) { s.signalDelivery(c, workflows.SignalRetry, "retry") }

// signalDelivery sends cancel or retry to a pending delivery's workflow.
func (s *Server) signalDelivery(c *gin.Context, signal, action string) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req signalRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	d, ok := s.ownDelivery(c, app.ID, action)
	if !ok {
		return
	}
	if d.Status != delivery.StatusPending {
		problem(c, http.StatusConflict, fmt.Sprintf("delivery is %s; replay it instead (POST /v1/deliveries/%s/replay)", d.Status, d.ID))
		return
	}
	err := s.Engine.SignalWorkflow(c.Request.Context(), d.WorkflowID, "", signal, workflows.SignalPayload{Reason: req.Reason})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		problem(c, http.StatusConflict, "delivery is making its first attempt; try again in a moment")
		return
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
	app, ok := caller(c)
	if !ok {
		return
	}
	d, ok := s.ownDelivery(c, app.ID, "replay")
	if !ok {
		return
	}
	if d.Status == delivery.StatusPending {
		problem(c, http.StatusConflict, "delivery is still pending; cancel or retry it instead")
		return
	}
	ev, err := s.Repo.GetEvent(c.Request.Context(), db.AnyApp(), d.EventID)
	if err != nil {
		s.fail(c, err)
		return
	}
	nd, err := s.replay(c, ev, d)
	if err != nil {
		s.fail(c, err)
		return
	}
	data(c, http.StatusAccepted, s.deliveryView(nd))
}

// replayEvent replays the latest delivery to each of an event's targets.
func (s *Server) replayEvent(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req struct {
		CallbackURL string `json:"callbackUrl"`
	}
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	notify, ok := s.callbackURL(c, req.CallbackURL)
	if !ok {
		return
	}
	ev, ok := s.pathEvent(c, app.ID)
	if !ok {
		return
	}
	// Counted before anything is read, and only as far as the limit: an event with 50,000
	// deliveries is refused after reading 2,001 index entries, not 50,000 rows.
	n, err := s.Repo.CountEventTargets(c.Request.Context(), ev.ID, maxEventReplay+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	if n > maxEventReplay {
		// The replays travel in the ReplayWorkflow's input: keep it far below Temporal's 2 MB.
		problem(c, http.StatusUnprocessableEntity, fmt.Sprintf("the event has more than %d targets; a whole-event replay takes at most %d "+
			"(replay deliveries one by one: POST /v1/deliveries/{id}/replay)", maxEventReplay, maxEventReplay))
		return
	}
	latest, err := s.Repo.LatestDeliveries(c.Request.Context(), ev.ID, maxEventReplay)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := []gin.H{}
	skipped := []gin.H{}
	var inputs []workflows.DeliveryInput
	requestID := "req_" + uuid.NewString()
	workflowID := "replay/" + ev.ID + "/" + requestID
	for _, d := range latest {
		if d.Status == delivery.StatusPending {
			skipped = append(skipped, gin.H{"id": d.ID, "reason": "still pending"})
			continue
		}
		nd, in, err := s.prepareReplay(c, ev, d, workflowID)
		if err != nil {
			s.fail(c, err)
			return
		}
		inputs = append(inputs, in)
		out = append(out, s.deliveryFor(app.ID, nd))
	}
	in := workflows.ReplayInput{RequestID: requestID, EventID: ev.ClientID, AppID: app.ID, Deliveries: inputs,
		SearchAttributes: s.Config.SearchAttributes}
	if notify != "" {
		// The callback URL may hold a token: an operation row keeps it, out of the workflow's
		// history, until the callback is stored.
		params, _ := json.Marshal(db.ReplayParams{CallbackURL: notify}) // a struct of a string always marshals
		if _, _, err := s.Repo.CreateOperation(c.Request.Context(), db.Operation{ID: requestID, AppID: app.ID,
			Kind: db.OperationReplay, Params: params, WorkflowID: workflowID}); err != nil {
			s.abandonReplays(inputs, err)
			s.fail(c, err)
			return
		}
		in.NotifyOperation, in.NotifyHost = requestID, activities.HostOf(notify)
	}
	// One workflow runs the replays and makes the callback once all have ended.
	_, err = s.Engine.ExecuteWorkflow(c.Request.Context(), client.StartWorkflowOptions{ID: workflowID,
		TaskQueue: s.Config.TaskQueue}, workflows.ReplayWorkflow, in)
	if err != nil {
		s.abandonReplays(inputs, err)
		if in.NotifyOperation != "" {
			if ferr := s.Repo.FinishOperation(context.WithoutCancel(c.Request.Context()), requestID, db.OperationCancelled); ferr != nil {
				s.Log.Warn("replay operation left running", "operation_id", requestID, "error", ferr)
			}
		}
		s.fail(c, err)
		return
	}
	data(c, http.StatusAccepted, gin.H{"requestId": requestID, "eventId": ev.ClientID, "replays": out, "skipped": skipped})
}

func (s *Server) replay(c *gin.Context, ev db.Event, d db.Delivery) (db.Delivery, error) {
	nd, in, err := s.prepareReplay(c, ev, d, "")
	if err != nil {
		return db.Delivery{}, err
	}
	opts := workflows.StartOptions(&in, s.Config.TaskQueue) // before in is passed: it changes in
	if _, err := s.Engine.ExecuteWorkflow(c.Request.Context(), opts, workflows.DeliveryWorkflow, in); err != nil {
		err = fmt.Errorf("start replay %s: %w", nd.ID, err)
		s.abandonReplays([]workflows.DeliveryInput{in}, err)
		return db.Delivery{}, err
	}
	return nd, nil
}

// abandonReplays ends replays whose workflow could not start, so that no pending row waits for a
// workflow that does not exist (the caller was told the replay failed and may ask again). If this
// fails too, the delivery reconciler finds them.
func (s *Server) abandonReplays(ins []workflows.DeliveryInput, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, in := range ins {
		if _, err := s.Repo.FinishDelivery(ctx, in.DeliveryID, delivery.StatusCancelled, "replay not started: "+cause.Error(), 0, false); err != nil {
			s.Log.Warn("replay left pending for the reconciler", "delivery_id", in.DeliveryID, "error", err)
		}
	}
}

// prepareReplay creates the replay's delivery row and the input of its DeliveryWorkflow.
// group names the workflow that waits for the replay to end ("" for none).
func (s *Server) prepareReplay(c *gin.Context, ev db.Event, d db.Delivery, group string) (db.Delivery, workflows.DeliveryInput, error) {
	ctx := c.Request.Context()
	pol, err := s.policyOf(ctx, d)
	if err != nil {
		return db.Delivery{}, workflows.DeliveryInput{}, err
	}
	nd, err := s.Repo.CreateReplay(ctx, d, group, activities.ReplayIDs(d))
	if err != nil {
		return db.Delivery{}, workflows.DeliveryInput{}, err
	}
	return nd, workflows.DeliveryInput{
		Retry:   delivery.Retry{DeliveryID: nd.ID, WorkflowID: nd.WorkflowID, SubscriptionID: d.SubscriptionID.String, Policy: pol, Host: activities.HostOf(nd.URL)},
		EventID: d.EventID, EventType: ev.Type, Topic: ev.Topic, SearchAttributes: s.Config.SearchAttributes, Replay: nd.Replay,
	}, nil
}

type rotateRequest struct {
	Secret  string `json:"secret"`
	GraceMS *int64 `json:"graceMs"`
}

// rotateSecret gives a subscription a new secret; the old one keeps signing for the grace period
// (default 24 h), so both signatures are sent meanwhile.
func (s *Server) rotateSecret(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req rotateRequest
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	grace := 24 * time.Hour
	if req.GraceMS != nil {
		if *req.GraceMS < 0 || *req.GraceMS > int64(30*24*time.Hour/time.Millisecond) {
			problem(c, http.StatusBadRequest, "graceMs: from 0 to 30 days")
			return
		}
		grace = time.Duration(*req.GraceMS) * time.Millisecond
	}
	cur, err := s.Repo.GetSubscription(c.Request.Context(), db.OwnedBy(app.ID), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	asymmetric := signature.IsSigningKey(cur.Secret)
	switch {
	case asymmetric && req.Secret != "":
		problem(c, http.StatusBadRequest, "secret: not for a v1a subscription (hookd makes the new key pair and shows the public key)")
		return
	case asymmetric:
		if req.Secret, ok = s.newSigningKey(c); !ok {
			return
		}
	default:
		if req.Secret, ok = s.secretOrNew(c, req.Secret); !ok {
			return
		}
	}
	sub, err := s.Repo.RotateSecret(c.Request.Context(), app.ID, c.Param("id"), req.Secret, time.Now().Add(grace))
	if err != nil {
		s.fail(c, err)
		return
	}
	v := subscriptionView(sub)
	if !asymmetric {
		v["secret"] = req.Secret
	}
	v["previousSecretValidUntil"] = sub.PreviousSecretUntil.Time
	data(c, http.StatusOK, v)
}

type verifyRequest struct {
	SubscriptionID string            `json:"subscriptionId"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body"`
}

// verifySignature tells a receiver whether a request it got is authentic: signed by one of the
// subscription's secrets, within the timestamp tolerance.
func (s *Server) verifySignature(c *gin.Context) {
	app, ok := caller(c)
	if !ok {
		return
	}
	var req verifyRequest
	if !bind(c, &req) {
		return
	}
	if req.SubscriptionID == "" {
		problem(c, http.StatusBadRequest, "subscriptionId: required")
		return
	}
	sub, err := s.Repo.GetSubscription(c.Request.Context(), db.OwnedBy(app.ID), req.SubscriptionID)
	if err != nil {
		s.fail(c, err)
		return
	}
	h := http.Header{}
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	var verr error
	for _, sec := range sub.Secrets(time.Now()) {
		if verr = (signature.Verifier{Secret: sec}).Verify(h, []byte(req.Body)); verr == nil {
			break
		}
	}
	if verr != nil {
		data(c, http.StatusOK, gin.H{"valid": false, "reason": verr.Error()})
		return
	}
	data(c, http.StatusOK, gin.H{"valid": true})
}
