// Package delivery is hookd's shared vocabulary: the ids of events, deliveries and their
// workflows, the statuses a delivery goes through, the retry policy it follows and the message that
// hands a delivery to its own workflow. Every other package speaks it; it imports none of them.
package delivery

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// EventKey is an event's internal key: the publisher's own id, qualified by the publisher, so two
// apps may use the same ids. It is the webhook-id receivers deduplicate by.
func EventKey(appID, eventID string) string { return appID + "/" + eventID }

// ClientEventID turns an event key ("<app id>/<event id>") back into the id its publisher gave it.
func ClientEventID(key string) string {
	if strings.HasPrefix(key, "app:") {
		if i := strings.IndexByte(key, '/'); i > 0 {
			return key[i+1:]
		}
	}
	return key // events stored before ids were per app
}

// EventWorkflowID is the Temporal id of an event's workflow: one per event, never two.
func EventWorkflowID(eventKey string) string { return "event/" + eventKey }

// DeliveryID derives a delivery's id from what makes it unique, so a retried fan-out finds the
// rows the crashed one wrote.
func DeliveryID(eventID, target string, replay int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", eventID, target, replay)))
	return "dlv_" + hex.EncodeToString(h[:12])
}

// DeliveryWorkflowID is the readable Temporal id of a delivery's retry workflow.
func DeliveryWorkflowID(eventID, target string, replay int) string {
	id := "delivery/" + eventID + "/" + target
	if replay > 0 {
		id += fmt.Sprintf("/replay-%d", replay)
	}
	return id
}
