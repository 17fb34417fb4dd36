package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// A v1a subscription is signed with ed25519: the subscriber gets the public key (never a secret),
// every delivery verifies with it, the API's verify endpoint agrees, the signing key is sealed at
// rest, and a rotation sends both signatures during its grace period.
func TestEd25519Subscription(t *testing.T) {
	s := newStack(t)
	app := s.newApp("ed25519")
	recv := testenv.NewReceiver(nil)
	t.Cleanup(recv.Close)
	s.must(s.call("POST", "/v1/subscriptions", app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"k"},
		"signatureScheme": "v1a", "secret": "whsec_c2VjcmV0"}), http.StatusBadRequest)
	s.must(s.call("POST", "/v1/subscriptions", app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"k"},
		"signatureScheme": "v2"}), http.StatusBadRequest)
	created := s.must(s.call("POST", "/v1/subscriptions", app.Key, map[string]any{"url": recv.URL, "eventTypes": []string{"k"},
		"signatureScheme": "v1a"}), http.StatusCreated).Data()
	pk, _ := created["publicKey"].(string)
	if !strings.HasPrefix(pk, "whpk_") || created["secret"] != nil || created["signatureScheme"] != "v1a" {
		t.Fatalf("created %v", created)
	}
	subID := created["id"].(string)
	if got := s.must(s.call("GET", "/v1/subscriptions/"+subID, app.Key, nil), http.StatusOK).Data(); got["publicKey"] != pk {
		t.Errorf("GET shows publicKey %v, want %s", got["publicKey"], pk)
	}

	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "k-1", "type": "k", "data": map[string]any{"n": 1}}), http.StatusCreated)
	s.waitDeliveries(app.Key, "k-1", 1, 30*time.Second)
	req := recv.Requests()[0]
	if sig := req.Header.Get("webhook-signature"); !strings.HasPrefix(sig, "v1a,") || strings.Contains(sig, "v1,") {
		t.Errorf("webhook-signature %q, want one v1a signature", sig)
	}
	if err := (signature.Verifier{Secret: pk}).Verify(req.Header, req.Body); err != nil {
		t.Fatalf("the delivery does not verify with the public key: %v", err)
	}
	v := s.must(s.call("POST", "/v1/signatures/verify", app.Key, map[string]any{"subscriptionId": subID, "body": string(req.Body),
		"headers": map[string]string{"webhook-id": req.Header.Get("webhook-id"), "webhook-timestamp": req.Header.Get("webhook-timestamp"),
			"webhook-signature": req.Header.Get("webhook-signature")}}), http.StatusOK).Data()
	if v["valid"] != true {
		t.Errorf("verify endpoint: %v", v)
	}

	var stored string
	if err := database.DB.Get(&stored, `SELECT secret FROM subscriptions WHERE id = $1`, subID); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(stored, "whsk_") || !strings.HasPrefix(stored, "enc:") {
		t.Errorf("the signing key is not sealed at rest: %.12s…", stored)
	}

	// Rotation: a new key pair; during the grace period both keys sign.
	s.must(s.call("POST", "/v1/subscriptions/"+subID+"/rotate-secret", app.Key, map[string]any{"secret": "whsec_c2VjcmV0"}), http.StatusBadRequest)
	rot := s.must(s.call("POST", "/v1/subscriptions/"+subID+"/rotate-secret", app.Key, map[string]any{"graceMs": 60000}), http.StatusOK).Data()
	newPK, _ := rot["publicKey"].(string)
	if newPK == pk || !strings.HasPrefix(newPK, "whpk_") || rot["previousPublicKey"] != pk || rot["secret"] != nil {
		t.Fatalf("rotated %v", rot)
	}
	s.must(s.call("POST", "/v1/events", app.Key, map[string]any{"id": "k-2", "type": "k"}), http.StatusCreated)
	s.waitDeliveries(app.Key, "k-2", 1, 30*time.Second)
	req = recv.Requests()[1]
	if n := len(strings.Fields(req.Header.Get("webhook-signature"))); n != 2 {
		t.Errorf("%d signatures during the grace period, want 2", n)
	}
	for _, key := range []string{pk, newPK} {
		if err := (signature.Verifier{Secret: key}).Verify(req.Header, req.Body); err != nil {
			t.Errorf("delivery after rotation does not verify with %s…: %v", key[:12], err)
		}
	}
}
