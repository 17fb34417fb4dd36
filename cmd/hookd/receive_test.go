package main

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/signature"
)

// hookd receive verifies with several secrets (a subscription's, and the app's for async
// callbacks and operational webhooks), given as repeated -secret flags or comma-separated; a
// request signed with any of them is ok, one signed with none is INVALID.
func TestReceiveVerifiesWithSeveralSecrets(t *testing.T) {
	subSecret, _ := signature.NewSecret()
	appSecret, _ := signature.NewSecret()
	other, _ := signature.NewSecret()
	var secrets secretList
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	fs.Var(&secrets, "secret", "")
	if err := fs.Parse([]string{"-secret", subSecret, "-secret", " " + appSecret + ", "}); err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 2 || secrets[1] != appSecret {
		t.Fatalf("secrets %v", secrets)
	}
	var out bytes.Buffer
	h := receiveHandler(&out, secrets, http.StatusAccepted)
	send := func(secret string) string {
		t.Helper()
		out.Reset()
		body := []byte(`{"type":"event.completed"}`)
		now := time.Now()
		sig, err := signature.Sign(secret, "msg_1", now, body)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
		r.Header.Set(signature.HeaderID, "msg_1")
		r.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		r.Header.Set(signature.HeaderSignature, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusAccepted {
			t.Errorf("answered %d", w.Code)
		}
		return out.String()
	}
	if got := send(subSecret); !strings.Contains(got, "signature ok with secret 1") {
		t.Errorf("signed with the subscription's secret: %s", got)
	}
	if got := send(appSecret); !strings.Contains(got, "signature ok with secret 2") {
		t.Errorf("signed with the app's secret: %s", got)
	}
	if got := send(other); !strings.Contains(got, "INVALID with each of the 2 secrets") {
		t.Errorf("signed with another secret: %s", got)
	}
	// One secret reads as before.
	out.Reset()
	if v := verdict([]string{subSecret}, http.Header{}, nil); !strings.HasPrefix(v, "INVALID: ") {
		t.Errorf("one secret, no headers: %s", v)
	}
}
