package signature

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Key prefixes of the asymmetric scheme (Standard Webhooks v1a, as Svix names them).
const (
	signingKeyPrefix = "whsk_" // the private key hookd signs with: never leaves hookd
	publicKeyPrefix  = "whpk_" // the public key receivers verify with
)

// ErrBadKey is returned for a signing or public key not in the whsk_/whpk_ <base64> form.
var ErrBadKey = errors.New("signature: key must be whsk_<base64 ed25519 private key> or whpk_<base64 ed25519 public key>")

// NewSigningKey returns a fresh ed25519 key pair: the signing key (whsk_, kept by hookd) and the
// public key (whpk_, given to the receiver).
func NewSigningKey() (signingKey, publicKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("new signing key: %w", err)
	}
	return signingKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()),
		publicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// IsSigningKey reports whether secret is an asymmetric signing key (whsk_), not a shared secret.
func IsSigningKey(secret string) bool { return strings.HasPrefix(secret, signingKeyPrefix) }

// PublicKey returns the whpk_ public key of a whsk_ signing key.
func PublicKey(signingKey string) (string, error) {
	pub, err := publicKey(signingKey)
	if err != nil {
		return "", err
	}
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

func privateKey(signingKey string) (ed25519.PrivateKey, error) {
	s, ok := strings.CutPrefix(signingKey, signingKeyPrefix)
	if !ok {
		return nil, ErrBadKey
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, ErrBadKey
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// publicKey decodes a whpk_ public key, or derives it from a whsk_ signing key.
func publicKey(key string) (ed25519.PublicKey, error) {
	if strings.HasPrefix(key, signingKeyPrefix) {
		priv, err := privateKey(key)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	s, ok := strings.CutPrefix(key, publicKeyPrefix)
	if !ok {
		return nil, ErrBadKey
	}
	pub, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, ErrBadKey
	}
	return pub, nil
}

func signEd25519(signingKey, id string, ts time.Time, body []byte) (string, error) {
	priv, err := privateKey(signingKey)
	if err != nil {
		return "", err
	}
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, signedContent(id, ts.Unix(), body))), nil
}
