package integration

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/signature"
)

// tenants is a publisher, a subscriber of one of its registered events and a stranger to both.
type tenants struct {
	pub, sub, stranger testApp
	subscription       testSub
	receiver           *testenv.Receiver
}

// newTenants registers event "usercreated" on topic participant for the publisher and subscribes
// the subscriber to it with a receiver that always answers 503 with a body only its owner may
// read, so its deliveries stay pending (retrying) until someone ends them.
func newTenants(s *stack, name string) tenants {
	s.t.Helper()
	tn := tenants{pub: s.newApp(name+" publisher", "get users"), sub: s.newApp(name+" subscriber", "get users"),
		stranger: s.newApp(name+" stranger", "get users")}
	s.must(s.call("POST", "/v1/topics/participant/events", tn.pub.Key, map[string]any{"events": []map[string]any{
		{"name": "usercreated", "eventType": "usercreatedevent"}}}), http.StatusCreated)
	tn.receiver = testenv.NewReceiver(func(int, *http.Request) (int, http.Header, string) {
		return 503, http.Header{"Retry-After": {"0"}}, "subscriber-only-response-body"
	})
	s.t.Cleanup(tn.receiver.Close)
	tn.subscription = s.subscribe(tn.sub.Key, map[string]any{"url": tn.receiver.URL + "/hook?token=subscriber-url-token",
		"appId": tn.pub.ID, "topic": "participant", "eventName": "usercreated", "contactEmail": "ops@subscriber.test",
		"retryPolicy": map[string]any{"initialIntervalMs": 200, "maxIntervalMs": 500, "maxAttempts": 1000, "maxDurationMs": 600_000}})
	return tn
}

// pendingDelivery publishes an event and waits for its delivery to have made two attempts.
func (tn tenants) pendingDelivery(s *stack, eventID string) string {
	s.t.Helper()
	s.must(s.call("POST", "/v1/events", tn.pub.Key, map[string]any{"id": eventID, "type": "usercreatedevent",
		"topic": "participant", "data": map[string]any{"userId": "u-1"}}), http.StatusCreated)
	var id string
	eventually(s.t, 30*time.Second, "two attempts of "+eventID, func() bool {
		ds := s.eventDeliveries(tn.pub.Key, eventID)
		if len(ds) == 1 && ds[0]["attempts"].(float64) >= 2 {
			id = ds[0]["id"].(string)
			return true
		}
		return false
	})
	return id
}

// Every cross-tenant read and write the API has: the publisher sees its event's deliveries' progress
// only and may act on none of them; a stranger sees nothing at all (404); the owner sees and does
// everything. The CLI gets the same answers.
func TestCrossTenantAccess(t *testing.T) {
	s := newStack(t)
	tn := newTenants(s, "xt")
	id := tn.pendingDelivery(s, "xt-1")
	subPath := "/v1/subscriptions/" + tn.subscription.ID

	// The publisher: progress of the deliveries of its event, nothing of the subscriber's.
	private := []string{"subscriber-only-response-body", "subscriber-url-token", tn.receiver.URL, "webhook-signature", "lastError"}
	for _, path := range []string{"/v1/events/xt-1", "/v1/deliveries/" + id} {
		res := s.must(s.call("GET", path, tn.pub.Key, nil), http.StatusOK)
		for _, p := range private {
			if strings.Contains(string(res.Raw), p) {
				t.Errorf("publisher's GET %s shows %q: %s", path, p, res.Raw)
			}
		}
	}
	pubView := s.delivery(tn.pub.Key, id)
	if pubView["status"] != "pending" || pubView["attempts"].(float64) < 2 || pubView["subscriberAppId"] != tn.sub.ID ||
		len(pubView["ledger"].([]any)) < 2 || pubView["ledger"].([]any)[0].(map[string]any)["responseStatus"] != 503.0 {
		t.Errorf("publisher's view of the delivery lacks its progress: %v", pubView)
	}
	for _, action := range []string{"cancel", "retry", "replay"} {
		res := s.must(s.call("POST", "/v1/deliveries/"+id+"/"+action, tn.pub.Key, nil), http.StatusForbidden)
		if !strings.Contains(res.Body["detail"].(string), "/v1/events/xt-1/replay") {
			t.Errorf("publisher's %s: 403 does not say what it may do: %s", action, res.Raw)
		}
	}

	// A stranger: nothing exists.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/deliveries/" + id}, {"POST", "/v1/deliveries/" + id + "/cancel"}, {"POST", "/v1/deliveries/" + id + "/retry"},
		{"POST", "/v1/deliveries/" + id + "/replay"}, {"GET", "/v1/events/xt-1"}, {"POST", "/v1/events/xt-1/replay"},
		{"GET", subPath}, {"PATCH", subPath}, {"DELETE", subPath}, {"POST", subPath + "/enable"},
		{"POST", subPath + "/disable"}, {"POST", subPath + "/rotate-secret"},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]any{"contactEmail": "attacker@example.test"}
		}
		res := s.call(c.method, c.path, tn.stranger.Key, body)
		if res.Status != http.StatusNotFound {
			t.Errorf("stranger's %s %s: %d, want 404: %s", c.method, c.path, res.Status, res.Raw)
		}
	}
	// Nor through the subscriber's own listings seen with another key.
	for _, key := range []string{tn.stranger.Key, tn.pub.Key} {
		for _, path := range []string{"/v1/deliveries", "/v1/subscriptions"} {
			if res := s.must(s.call("GET", path, key, nil), http.StatusOK); strings.Contains(string(res.Raw), id) ||
				strings.Contains(string(res.Raw), tn.subscription.ID) {
				t.Errorf("GET %s with another app's key lists the subscriber's rows: %s", path, res.Raw)
			}
		}
	}
	// A stranger removing the publisher's event by name removes nothing.
	res := s.must(s.call("POST", "/v1/topics/participant/events/bulk-delete", tn.stranger.Key,
		map[string]any{"events": []string{"usercreated"}}), http.StatusOK)
	if fmt.Sprint(res.Data()["notFound"]) != "[usercreated]" {
		t.Errorf("stranger's bulk delete: %s", res.Raw)
	}

	// The directory: names, ids and events for everyone; contacts and permissions for oneself.
	apps := s.must(s.call("GET", "/v1/apps?pageSize=500", tn.stranger.Key, nil), http.StatusOK).Data()["apps"].([]any)
	seen := 0
	for _, a := range apps {
		a := a.(map[string]any)
		_, hasContact := a["contactEmail"]
		_, hasPerms := a["permissions"]
		switch a["id"] {
		case tn.stranger.ID:
			seen++
			if !hasContact || !hasPerms {
				t.Errorf("an app does not see its own contact and permissions: %v", a)
			}
		case tn.pub.ID:
			seen++
			if hasContact || hasPerms || a["name"] != "xt publisher" || len(a["events"].([]any)) != 1 {
				t.Errorf("directory entry of another app: %v", a)
			}
		default:
			if hasContact || hasPerms {
				t.Errorf("directory shows another app's contact or permissions: %v", a)
			}
		}
	}
	if seen != 2 {
		t.Errorf("directory lists %d of the 2 apps it should", seen)
	}
	ops := s.must(s.call("GET", "/v1/apps?pageSize=500", operatorKey, nil), http.StatusOK)
	if !strings.Contains(string(ops.Raw), "xt-publisherapp@example.test") {
		t.Errorf("the operator does not see contacts: %s", ops.Raw)
	}

	// The CLI, with each app's key, gets the same answers.
	cli := func(key string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, hookdBinary(t), args...)
		cmd.Env = append(environWithout("HOOKD_ENCRYPTION_KEY"), "HOOKD_API_URL="+s.URL, "HOOKD_API_KEY="+key)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"delivery", id}, {"cancel", id}, {"retry", id}, {"replay", id}, {"replay-event", "xt-1"}} {
		if out, err := cli(tn.stranger.Key, args...); err == nil || !strings.Contains(out, "404") {
			t.Errorf("stranger's hookd %v: err %v\n%s", args, err, out)
		}
	}
	if out, err := cli(tn.pub.Key, "cancel", id); err == nil || !strings.Contains(out, "403") {
		t.Errorf("publisher's hookd cancel: err %v\n%s", err, out)
	}
	if out, err := cli(tn.pub.Key, "delivery", id); err != nil || strings.Contains(out, "subscriber-only-response-body") || strings.Contains(out, "subscriber-url-token") {
		t.Errorf("publisher's hookd delivery: err %v\n%s", err, out)
	}

	// The owner sees everything and may act.
	own := s.delivery(tn.sub.Key, id)
	if !strings.Contains(fmt.Sprint(own["ledger"]), "subscriber-only-response-body") || !strings.Contains(fmt.Sprint(own["url"]), "subscriber-url-token") {
		t.Errorf("owner's view lacks its ledger: %v", own)
	}
	if out, err := cli(tn.sub.Key, "cancel", id); err != nil {
		t.Fatalf("owner's hookd cancel: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "owner's cancel", func() bool { return s.delivery(tn.sub.Key, id)["status"] == "cancelled" })
	for _, q := range tn.receiver.Requests() {
		if err := (signature.Verifier{Secret: tn.subscription.Secret}).Verify(q.Header, q.Body); err != nil {
			t.Errorf("request not signed with the subscription's secret: %v", err)
		}
	}
}

// A publisher removing a registered event disables the subscriptions to it with a reason, ends
// their pending deliveries as cancelled, tells their contact once and keeps everything of theirs;
// the receiver never sees a request signed with anything but its subscription's secret.
func TestRegistryRemovalKeepsSubscribersData(t *testing.T) {
	s := newStack(t)
	tn := newTenants(s, "rm")
	id := tn.pendingDelivery(s, "rm-1")
	second := s.subscribe(tn.sub.Key, map[string]any{"url": tn.receiver.URL + "/second", "appId": tn.pub.ID,
		"topic": "participant", "eventName": "usercreated", "contactEmail": "ops@subscriber.test"})
	s.must(s.call("POST", "/v1/topics/participant/events/bulk-delete", tn.pub.Key,
		map[string]any{"events": []string{"usercreated"}}), http.StatusOK)

	eventually(t, 30*time.Second, "pending delivery cancelled", func() bool { return s.delivery(tn.sub.Key, id)["status"] == "cancelled" })
	d := s.delivery(tn.sub.Key, id)
	if !strings.Contains(fmt.Sprint(d["lastError"]), `removed the event "usercreated"`) {
		t.Errorf("cancelled delivery's reason: %v", d["lastError"])
	}
	if n := len(d["ledger"].([]any)); n < 2 {
		t.Errorf("ledger has %d attempts after the removal, want the ones made before", n)
	}
	for _, sid := range []string{tn.subscription.ID, second.ID} {
		sub := s.must(s.call("GET", "/v1/subscriptions/"+sid, tn.sub.Key, nil), http.StatusOK).Data()
		if sub["active"] != false || !strings.Contains(fmt.Sprint(sub["disabledReason"]), `the publisher removed the event "usercreated"`) {
			t.Errorf("subscription after the removal: %v", sub)
		}
		res := s.must(s.call("POST", "/v1/subscriptions/"+sid+"/enable", tn.sub.Key, nil), http.StatusConflict)
		if !strings.Contains(res.Body["detail"].(string), "cannot be enabled again") {
			t.Errorf("enable: %s", res.Raw)
		}
	}
	// One e-mail to the shared contact, naming both subscriptions, and no second one later (the
	// reconciler finds nothing left to tell).
	var mails []testenv.Mail
	eventually(t, 20*time.Second, "removal e-mail", func() bool {
		mails = nil
		for _, m := range s.SMTP.Messages() {
			if strings.Contains(m.Data, "subscription disabled") {
				mails = append(mails, m)
			}
		}
		return len(mails) > 0
	})
	if err := s.app.Reconciler.ReconcileRemovals(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	count := 0
	for _, m := range s.SMTP.Messages() {
		if strings.Contains(m.Data, "subscription disabled") {
			count++
		}
	}
	if count != 1 || fmt.Sprint(mails[0].To) != "[ops@subscriber.test]" || !strings.Contains(mails[0].Data, tn.subscription.ID) ||
		!strings.Contains(mails[0].Data, second.ID) {
		t.Errorf("%d removal e-mails; first to %v:\n%s", count, mails[0].To, mails[0].Data)
	}

	// Nothing more reaches the receiver, and all it got was signed with its subscriptions' secrets.
	got := tn.receiver.Count()
	s.must(s.call("POST", "/v1/topics/participant/events", tn.pub.Key, map[string]any{"events": []map[string]any{
		{"name": "usercreated", "eventType": "usercreatedevent"}}}), http.StatusCreated)
	s.must(s.call("POST", "/v1/events", tn.pub.Key, map[string]any{"id": "rm-2", "type": "usercreatedevent", "topic": "participant"}), http.StatusCreated)
	eventually(t, 10*time.Second, "rm-2 dispatched", func() bool {
		var done bool
		_ = database.DB.Get(&done, `SELECT dispatched_at IS NOT NULL FROM events WHERE app_id = $1 AND client_id = 'rm-2'`, tn.pub.ID)
		return done
	})
	time.Sleep(time.Second)
	if n := tn.receiver.Count(); n != got {
		t.Errorf("receiver got %d requests after the removal", n-got)
	}
	if ds := s.eventDeliveries(tn.pub.Key, "rm-2"); len(ds) != 0 {
		t.Errorf("an event re-registered under the old name reached the disabled subscriptions: %v", ds)
	}
	for _, q := range tn.receiver.Requests() {
		secret := tn.subscription.Secret
		if q.Path == "/second" {
			secret = second.Secret
		}
		if err := (signature.Verifier{Secret: secret}).Verify(q.Header, q.Body); err != nil {
			t.Errorf("request to %s not signed with its subscription's secret: %v", q.Path, err)
		}
		if (signature.Verifier{Secret: tn.pub.Secret}).Verify(q.Header, q.Body) == nil {
			t.Errorf("request to %s signed with the publisher's secret", q.Path)
		}
	}
	var rows int
	if err := database.DB.Get(&rows, `SELECT count(*) FROM subscriptions WHERE app_id = $1`, tn.sub.ID); err != nil || rows != 2 {
		t.Errorf("subscriber's subscriptions left: %d (%v)", rows, err)
	}
}

// API keys: an app issues more keys and revokes any of them, the operator for any app, nobody for
// another app; a revoked key stops working at once in every API process, cache included.
func TestAPIKeysIssueAndRevoke(t *testing.T) {
	s := newStack(t)
	other := startStack(t, false) // a second API process with a key cache of its own
	created := s.must(s.call("POST", "/v1/apps", operatorKey, map[string]any{"name": "keys"}), http.StatusCreated).Data()
	appID, first, firstID := created["id"].(string), created["apiKey"].(string), created["apiKeyId"].(string)
	stranger := s.newApp("keys stranger")

	k2 := s.must(s.call("POST", "/v1/apps/"+appID+"/keys", first, nil), http.StatusCreated).Data()
	second, secondID := k2["apiKey"].(string), k2["id"].(string)
	if !strings.HasPrefix(second, "hk_") || second == first {
		t.Fatalf("new key %q", second)
	}
	k3 := s.must(s.call("POST", "/v1/apps/"+appID+"/keys", operatorKey, nil), http.StatusCreated).Data()
	third := k3["apiKey"].(string)
	for _, key := range []string{first, second, third} {
		s.must(s.call("GET", "/v1/subscriptions", key, nil), http.StatusOK)
		s.must(other.call("GET", "/v1/subscriptions", key, nil), http.StatusOK) // cached there now
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/apps/" + appID + "/keys"}, {"GET", "/v1/apps/" + appID + "/keys"}, {"DELETE", "/v1/apps/" + appID + "/keys/" + firstID},
	} {
		s.must(s.call(c.method, c.path, stranger.Key, nil), http.StatusForbidden)
	}
	list := s.must(s.call("GET", "/v1/apps/"+appID+"/keys", second, nil), http.StatusOK)
	if n := len(list.Data()["keys"].([]any)); n != 3 || strings.Contains(string(list.Raw), "hk_") {
		t.Errorf("%d keys listed: %s", n, list.Raw)
	}

	// The app revokes its first key with the second; the operator revokes the second.
	s.must(s.call("DELETE", "/v1/apps/"+appID+"/keys/"+firstID, second, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/subscriptions", first, nil), http.StatusUnauthorized)
	s.must(s.call("DELETE", "/v1/apps/"+appID+"/keys/"+secondID, operatorKey, nil), http.StatusOK)
	s.must(s.call("GET", "/v1/subscriptions", second, nil), http.StatusUnauthorized)
	// The other process heard of both (well before its 30 s cache would have let them go).
	eventually(t, 3*time.Second, "revoked keys refused by the other API process", func() bool {
		return other.call("GET", "/v1/subscriptions", first, nil).Status == http.StatusUnauthorized &&
			other.call("GET", "/v1/subscriptions", second, nil).Status == http.StatusUnauthorized
	})
	s.must(other.call("GET", "/v1/subscriptions", third, nil), http.StatusOK)
	s.must(s.call("DELETE", "/v1/apps/"+appID+"/keys/key_nosuch", third, nil), http.StatusNotFound)
	keys := s.must(s.call("GET", "/v1/apps/"+appID+"/keys", third, nil), http.StatusOK).Data()["keys"].([]any)
	revoked := 0
	for _, k := range keys {
		if _, ok := k.(map[string]any)["revokedAt"]; ok {
			revoked++
		}
	}
	if revoked != 2 {
		t.Errorf("%d keys revoked, want 2: %v", revoked, keys)
	}
}
