package signature

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// The Standard Webhooks reference test vector.
func TestSignMatchesSpecVector(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	ts := time.Unix(1614265330, 0)
	got, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	oldS, _ := NewSecret()
	newS, _ := NewSecret()
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"a":1}`)
	sig, err := Header([]string{newS, oldS}, "evt_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, "evt_1")
	h.Set(HeaderTimestamp, "1700000000")
	h.Set(HeaderSignature, sig)
	at := func(t time.Time) func() time.Time { return func() time.Time { return t } }

	for _, s := range []string{oldS, newS} {
		if err := (Verifier{Secret: s, Now: at(now)}).Verify(h, body); err != nil {
			t.Errorf("rotated secret does not verify: %v", err)
		}
	}
	other, _ := NewSecret()
	cases := []struct {
		name   string
		v      Verifier
		body   []byte
		header http.Header
		want   error
	}{
		{"tampered body", Verifier{Secret: newS, Now: at(now)}, []byte(`{"a":2}`), h, ErrNoMatch},
		{"wrong secret", Verifier{Secret: other, Now: at(now)}, body, h, ErrNoMatch},
		{"stale", Verifier{Secret: newS, Now: at(now.Add(6 * time.Minute))}, body, h, ErrStaleTimestamp},
		{"future", Verifier{Secret: newS, Now: at(now.Add(-6 * time.Minute))}, body, h, ErrStaleTimestamp},
		{"missing", Verifier{Secret: newS, Now: at(now)}, body, http.Header{}, ErrMissingHeaders},
		{"bad secret", Verifier{Secret: "nope", Now: at(now)}, body, h, ErrBadSecret},
	}
	for _, c := range cases {
		if err := c.v.Verify(c.header, c.body); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("evt_1", "1700000000", "v1,AAAA v2,BBBB", []byte(`{}`))
	f.Add("", "x", ",,,", []byte(nil))
	f.Add("id", "-99999999999999999999", "v1,=== v1,", []byte("\x00"))
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	f.Fuzz(func(t *testing.T, id, ts, sigs string, body []byte) {
		v := Verifier{Secret: secret, Now: func() time.Time { return time.Unix(1_700_000_000, 0) }}
		if err := v.VerifyValues(id, ts, sigs, body); err == nil {
			// Anything accepted must be a genuine signature.
			sec, _ := Sign(secret, id, mustUnix(t, ts), body)
			found := false
			for _, s := range splitFields(sigs) {
				found = found || s == sec
			}
			if !found {
				t.Fatalf("accepted a forged signature %q", sigs)
			}
		}
	})
}

// BenchmarkHeader is the signing of one delivery's attempt (a 1 KiB payload, one secret).
func BenchmarkHeader(b *testing.B) {
	secrets := []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	body := make([]byte, 1024)
	ts := time.Unix(1674087231, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Header(secrets, "app:bench/evt_0123456789", ts, body); err != nil {
			b.Fatal(err)
		}
	}
}
