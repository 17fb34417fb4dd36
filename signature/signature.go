// Package signature signs and verifies webhook requests using the Standard Webhooks schemes
// (https://www.standardwebhooks.com) over "id.timestamp.body": HMAC-SHA256 with a shared secret
// (whsec_…, sent as "v1,<base64>") or ed25519 with a signing key (whsk_…, sent as "v1a,<base64>",
// verified with the public key whpk_…). Receivers import this package to verify what hookd sends.
package signature

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	secretPrefix    = "whsec_"
)

// DefaultTolerance is how far a timestamp may be from now before Verify refuses it (replay protection).
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify; callers can tell them apart with errors.Is.
var (
	ErrMissingHeaders = errors.New("signature: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp   = errors.New("signature: timestamp is not a unix time")
	ErrStaleTimestamp = errors.New("signature: timestamp outside the tolerance window")
	ErrNoMatch        = errors.New("signature: no signature matches")
	ErrBadSecret      = errors.New("signature: secret must be whsec_<base64>")
)

// NewSecret returns a fresh random secret in the whsec_<base64> form.
func NewSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// key decodes a whsec_ secret into its HMAC key.
func key(secret string) ([]byte, error) {
	s, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) == 0 {
		return nil, ErrBadSecret
	}
	return k, nil
}

// ValidSecret reports whether secret has the whsec_<base64> form.
func ValidSecret(secret string) bool {
	_, err := key(secret)
	return err == nil
}

// Sign returns the signature of body for one secret: "v1,<base64>" for a whsec_ secret,
// "v1a,<base64>" for a whsk_ signing key.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	if strings.HasPrefix(secret, signingKeyPrefix) {
		return signEd25519(secret, id, ts, body)
	}
	k, err := key(secret)
	if err != nil {
		return "", err
	}
	// "v1," and the base64 in one allocation.
	sum := mac(k, id, ts.Unix(), body)
	out := make([]byte, 3+base64.StdEncoding.EncodedLen(len(sum)))
	copy(out, "v1,")
	base64.StdEncoding.Encode(out[3:], sum)
	return string(out), nil
}

// Header returns the webhook-signature value for all secrets (several during a secret rotation),
// space separated as the specification requires.
func Header(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 1 {
		return Sign(secrets[0], id, ts, body)
	}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// mac is the HMAC-SHA256 of "id.timestamp.body", written to the hash piece by piece: the body is
// not copied (a delivery's payload is signed once per attempt).
func mac(k []byte, id string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, k)
	var head [64]byte
	b := append(head[:0], id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	h.Write(b)
	h.Write(body)
	var sum [sha256.Size]byte
	return h.Sum(sum[:0])
}

// signedContent is what both schemes sign: "id.timestamp.body".
func signedContent(id string, ts int64, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(body)+22)
	b = append(b, id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	return append(b, body...)
}

// verification is how one secret checks signatures of one version.
type verification struct {
	version string
	ok      func(content, sig []byte) bool
}

func checker(secret string) (verification, error) {
	switch {
	case strings.HasPrefix(secret, publicKeyPrefix) || strings.HasPrefix(secret, signingKeyPrefix):
		pub, err := publicKey(secret)
		if err != nil {
			return verification{}, err
		}
		return verification{version: "v1a", ok: func(content, sig []byte) bool { return ed25519.Verify(pub, content, sig) }}, nil
	default:
		k, err := key(secret)
		if err != nil {
			return verification{}, err
		}
		return verification{version: "v1", ok: func(content, sig []byte) bool {
			h := hmac.New(sha256.New, k)
			h.Write(content)
			return hmac.Equal(h.Sum(nil), sig)
		}}, nil
	}
}

// Verifier checks requests against one secret: a whsec_ secret checks v1 signatures; a whpk_
// public key (or the whsk_ signing key it belongs to) checks v1a signatures.
type Verifier struct {
	Secret    string
	Tolerance time.Duration    // zero means DefaultTolerance
	Now       func() time.Time // nil means time.Now
}

// Verify checks the Standard Webhooks headers of a received request against its raw body.
func (v Verifier) Verify(h http.Header, body []byte) error {
	return v.VerifyValues(h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature), body)
}

// VerifyValues is Verify with the three header values given directly.
func (v Verifier) VerifyValues(id, timestamp, signatures string, body []byte) error {
	if id == "" || timestamp == "" || signatures == "" {
		return ErrMissingHeaders
	}
	check, err := checker(v.Secret)
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol == 0 {
		tol = DefaultTolerance
	}
	if d := now().Sub(time.Unix(ts, 0)); d > tol || d < -tol {
		return ErrStaleTimestamp
	}
	for _, s := range strings.Fields(signatures) {
		ver, sig, ok := strings.Cut(s, ",")
		if !ok || ver != check.version {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if check.ok(signedContent(id, ts, body), got) {
			return nil
		}
	}
	return ErrNoMatch
}
