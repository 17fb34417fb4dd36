package delivery

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Inputs show durations as an operator reads them ("1s", not 1000000000: the Temporal Web UI shows
// inputs as JSON), and inputs written before (integer nanoseconds) still decode the same.
func TestPolicyJSON(t *testing.T) {
	p := Policy{InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: 90 * time.Second, MaxAttempts: 4,
		MaxDuration: 24 * time.Hour, Timeout: 5 * time.Second}
	b, err := json.Marshal(Retry{DeliveryID: "dlv_1", Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"InitialInterval":"1s"`, `"MaxInterval":"1m30s"`, `"MaxDuration":"24h0m0s"`, `"Timeout":"5s"`, `"MaxAttempts":4`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back Retry
	if err := json.Unmarshal(b, &back); err != nil || back.Policy != p {
		t.Fatalf("round trip: %+v, %v", back.Policy, err)
	}
	// As recorded histories (workflows/testdata) carry it.
	old := `{"InitialInterval":1000000000,"BackoffCoefficient":2,"MaxInterval":90000000000,"MaxAttempts":4,"MaxDuration":86400000000000,"Timeout":5000000000}`
	var q Policy
	if err := json.Unmarshal([]byte(old), &q); err != nil || q != p {
		t.Fatalf("old shape: %+v, %v", q, err)
	}
	for _, bad := range []string{`{"Timeout":"soon"}`, `{"Timeout":true}`} {
		if err := json.Unmarshal([]byte(bad), &q); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
