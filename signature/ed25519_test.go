package signature

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEd25519SignAndVerify(t *testing.T) {
	sk, pk, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sk, "whsk_") || !strings.HasPrefix(pk, "whpk_") || !IsSigningKey(sk) || IsSigningKey(pk) {
		t.Fatalf("keys %q %q", sk, pk)
	}
	if derived, err := PublicKey(sk); err != nil || derived != pk {
		t.Fatalf("PublicKey(signing key) = %q, %v; want %q", derived, err, pk)
	}
	now := time.Unix(1700000000, 0)
	body := []byte(`{"n":1}`)
	sig, err := Sign(sk, "msg_1", now, body)
	if err != nil || !strings.HasPrefix(sig, "v1a,") {
		t.Fatalf("Sign = %q, %v", sig, err)
	}
	// The signature is plain ed25519 over "id.timestamp.body": any library checks it.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1a,"))
	pub, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(pk, "whpk_"))
	if !ed25519.Verify(pub, []byte("msg_1.1700000000."+string(body)), raw) {
		t.Fatal("not an ed25519 signature of id.timestamp.body")
	}
	at := func() time.Time { return now }
	h := http.Header{}
	h.Set(HeaderID, "msg_1")
	h.Set(HeaderTimestamp, "1700000000")
	h.Set(HeaderSignature, sig)
	for _, key := range []string{pk, sk} {
		if err := (Verifier{Secret: key, Now: at}).Verify(h, body); err != nil {
			t.Errorf("verify with %s…: %v", key[:5], err)
		}
	}
	if err := (Verifier{Secret: pk, Now: at}).Verify(h, []byte(`{"n":2}`)); !errors.Is(err, ErrNoMatch) {
		t.Errorf("tampered body: %v", err)
	}
	_, other, _ := NewSigningKey()
	if err := (Verifier{Secret: other, Now: at}).Verify(h, body); !errors.Is(err, ErrNoMatch) {
		t.Errorf("another key: %v", err)
	}
	// A v1 secret never accepts a v1a signature, nor a public key a v1 one.
	sec, _ := NewSecret()
	if err := (Verifier{Secret: sec, Now: at}).Verify(h, body); !errors.Is(err, ErrNoMatch) {
		t.Errorf("v1 secret against v1a signature: %v", err)
	}
	v1, _ := Sign(sec, "msg_1", now, body)
	h.Set(HeaderSignature, v1)
	if err := (Verifier{Secret: pk, Now: at}).Verify(h, body); !errors.Is(err, ErrNoMatch) {
		t.Errorf("public key against v1 signature: %v", err)
	}
	// During a rotation from a shared secret to a key pair both are sent; each verifier finds its own.
	both, err := Header([]string{sk, sec}, "msg_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h.Set(HeaderSignature, both)
	for _, key := range []string{pk, sec} {
		if err := (Verifier{Secret: key, Now: at}).Verify(h, body); err != nil {
			t.Errorf("rotation, %s…: %v", key[:5], err)
		}
	}
	for _, bad := range []string{"whpk_", "whpk_AAAA", "whsk_!!", "whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 31))} {
		if err := (Verifier{Secret: bad, Now: at}).Verify(h, body); !errors.Is(err, ErrBadKey) {
			t.Errorf("key %q: %v, want ErrBadKey", bad, err)
		}
	}
}
