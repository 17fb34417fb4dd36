package api

import (
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/config"
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
