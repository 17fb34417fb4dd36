package api

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/delivery"
	"github.com/hookd/hookd/usecase"
)

// A link to a workflow history stays while Temporal keeps it; after the namespace's retention the
// answer says when it was deleted instead of pointing at nothing.
func TestHistoryLinksExpire(t *testing.T) {
	s := &Server{Config: config.Config{TemporalUIURL: "http://ui", TemporalNamespace: "default"}, HistoryRetention: 24 * time.Hour}
	for _, c := range []struct {
		name    string
		closed  time.Time
		link    bool
		expired string
	}{
		{"running", time.Time{}, true, ""},
		{"closed an hour ago", time.Now().Add(-time.Hour), true, ""},
		{"closed two days ago", time.Now().Add(-48 * time.Hour), false, "deleted at"},
	} {
		l := s.historyLinks("delivery/x", c.closed)
		if got := l["temporalUi"] != ""; got != c.link {
			t.Errorf("%s: link %q", c.name, l["temporalUi"])
		}
		note, _ := l["temporalUiExpired"].(string)
		if (c.expired == "") != (note == "") || !strings.Contains(note, c.expired) {
			t.Errorf("%s: note %q", c.name, note)
		}
	}
	s.HistoryRetention = 0 // unknown: always link
	if l := s.historyLinks("delivery/x", time.Now().Add(-1000*time.Hour)); l["temporalUi"] == "" {
		t.Error("no link with an unknown retention")
	}
}

// A delivery links to the workflow it ran in: its own DeliveryWorkflow once its first attempt
// failed (waiting for the second: the moment an operator signals it) and for every replay; its
// event's workflow when its first attempt succeeded there, and then it has no workflowId (the id
// reserved for it was never used).
func TestDeliveryLinksToTheWorkflowItRanIn(t *testing.T) {
	s := &Server{Config: config.Config{TemporalUIURL: "http://ui", TemporalNamespace: "default"}}
	const own, event = "delivery/app:a/e1/sub_1", "event/app:a/e1"
	for _, c := range []struct {
		name     string
		d        db.Delivery
		wf       string
		rowKnows bool
	}{
		{"waiting for its second attempt", db.Delivery{Status: delivery.StatusPending, Attempts: 1, LastStatus: sql.NullInt32{Int32: 503, Valid: true}}, own, true},
		{"first attempt under way", db.Delivery{Status: delivery.StatusPending, Attempts: 1}, event, false},
		{"succeeded at once", db.Delivery{Status: delivery.StatusSucceeded, Attempts: 1}, event, false},
		{"succeeded after retries", db.Delivery{Status: delivery.StatusSucceeded, Attempts: 3}, own, true},
		{"failed", db.Delivery{Status: delivery.StatusFailed, Attempts: 4}, own, true},
		{"replay waiting", db.Delivery{Status: delivery.StatusPending, Replay: 1}, own + "/replay-1", true},
		{"replay succeeded at once", db.Delivery{Status: delivery.StatusSucceeded, Attempts: 1, Replay: 2}, own + "/replay-2", true},
		{"not attempted yet", db.Delivery{Status: delivery.StatusPending}, event, false},
	} {
		c.d.ID, c.d.EventID, c.d.WorkflowID = "dlv_1", "app:a/e1", own
		if c.d.Replay > 0 {
			c.d.WorkflowID = fmt.Sprintf("%s/replay-%d", own, c.d.Replay)
		}
		_, sure := usecase.OwnWorkflow(c.d)
		v := s.deliveryView(c.d)
		link := v["links"].(gin.H)["temporalUi"].(string)
		if want := "http://ui/namespaces/default/workflows/" + url.PathEscape(c.wf); link != want || sure != c.rowKnows {
			t.Errorf("%s: link %s, want %s (row tells: %v)", c.name, link, want, sure)
		}
		if wf, has := v["workflowId"]; (c.wf == event) == has || has && wf != c.wf {
			t.Errorf("%s: workflowId %v", c.name, wf)
		}
	}
}
