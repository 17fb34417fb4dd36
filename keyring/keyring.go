// Package keyring seals short secrets with AES-256-GCM under a list of named keys, the first of
// which seals and all of which open, so the key can be rotated without downtime.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Prefix starts every sealed value; a value without it was stored before encryption.
const Prefix = "enc:"

// version is the only stored format: enc:v1:<key id>:<base64url(nonce || ciphertext)>.
const version = Prefix + "v1:"

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Format describes HOOKD_ENCRYPTION_KEY for error messages and help texts.
const Format = "<key id>:<base64 of 32 random bytes>, several separated by commas, the first one current " +
	"(make one with `hookd gen-encryption-key`, or `echo k1:$(openssl rand -base64 32)`)"

// Errors Open returns; none of them carries key material or the value.
var (
	ErrUnknownKey = errors.New("sealed with a key the keyring does not hold")
	ErrCorrupt    = errors.New("sealed value does not open: tampered with, or bound to another row")
	ErrFormat     = errors.New("not a sealed value")
)

// Keyring holds the keys of HOOKD_ENCRYPTION_KEY. It is immutable and safe for concurrent use.
type Keyring struct {
	ids  []string // in the order given; ids[0] is current
	aead map[string]cipher.AEAD
}

// Parse reads a spec such as "k2:<base64>,k1:<base64>" (see Format). Errors name the entry,
// never its key.
func Parse(spec string) (*Keyring, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("no key")
	}
	k := &Keyring{aead: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("key %d: no key id", i+1)
		}
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if _, dup := k.aead[id]; dup {
			return nil, fmt.Errorf("key %d: key id %q given twice", i+1, id)
		}
		key, err := decodeKey(b64)
		if err != nil {
			return nil, fmt.Errorf("key %d (%s): %w", i+1, id, err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("key %d (%s): %w", i+1, id, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d (%s): %w", i+1, id, err)
		}
		k.ids = append(k.ids, id)
		k.aead[id] = gcm
	}
	return k, nil
}

// Generate returns the spec of one new random key named id, for a new deployment or to put in
// front of the current spec when rotating.
func Generate(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// Current is the id of the key that seals.
func (k *Keyring) Current() string { return k.ids[0] }

// IDs lists the key ids, current first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// Seal encrypts plain under the current key. aad binds the result to where it is stored (such
// as "subscriptions.secret/<id>"): Open with another aad fails, so a sealed value copied to
// another row or column does not open there.
func (k *Keyring) Seal(plain, aad string) (string, error) {
	if k == nil {
		return "", errors.New("seal: no encryption key")
	}
	id := k.ids[0]
	gcm := k.aead[id]
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plain)+gcm.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	// Random 96-bit nonces are safe for far more values than hookd stores under one key (NIST's
	// limit is 2^32 per key), and rotation starts a new key anyway.
	out := gcm.Seal(nonce, nonce, []byte(plain), []byte(aad))
	return version + id + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value Seal returned with the same aad, under whichever key sealed it.
func (k *Keyring) Open(stored, aad string) (string, error) {
	if k == nil {
		return "", errors.New("open: no encryption key")
	}
	id, data, err := split(stored)
	if err != nil {
		return "", err
	}
	gcm, ok := k.aead[id]
	if !ok {
		return "", fmt.Errorf("key %q: %w", id, ErrUnknownKey)
	}
	raw, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil || len(raw) < gcm.NonceSize()+gcm.Overhead() {
		return "", fmt.Errorf("key %q: %w", id, ErrCorrupt)
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(aad))
	if err != nil {
		return "", fmt.Errorf("key %q: %w", id, ErrCorrupt)
	}
	return string(plain), nil
}

// IsSealed tells whether a stored value is sealed (starts with "enc:") rather than plain text.
func IsSealed(stored string) bool { return strings.HasPrefix(stored, Prefix) }

// KeyID returns the id of the key that sealed a stored value.
func KeyID(stored string) (string, error) {
	id, _, err := split(stored)
	return id, err
}

// IsCurrent tells whether a stored value is sealed under the current key, i.e. needs no rotation.
func (k *Keyring) IsCurrent(stored string) bool {
	id, err := KeyID(stored)
	return err == nil && id == k.Current()
}

// CurrentPrefix is how every value sealed under the current key starts, for finding the values
// a rotation still has to re-encrypt with a query.
func (k *Keyring) CurrentPrefix() string { return version + k.Current() + ":" }

// String names the keys, never their material, so a keyring can be printed or logged.
func (k *Keyring) String() string {
	if k == nil {
		return "keyring(none)"
	}
	return "keyring(" + strings.Join(k.ids, ",") + ")"
}

// GoString keeps %#v from printing the cipher state.
func (k *Keyring) GoString() string { return k.String() }

// LogValue keeps slog from printing the cipher state.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

func split(stored string) (id, data string, err error) {
	if !strings.HasPrefix(stored, Prefix) {
		return "", "", ErrFormat
	}
	rest, ok := strings.CutPrefix(stored, version)
	if !ok {
		return "", "", fmt.Errorf("%w: unknown format version (this hookd reads %s)", ErrFormat, version)
	}
	id, data, ok = strings.Cut(rest, ":")
	if !ok || checkID(id) != nil {
		return "", "", fmt.Errorf("%w: no key id", ErrFormat)
	}
	return id, data, nil
}

// checkID keeps ids short and free of the separators of the spec and of stored values. The
// error does not repeat the id: a mistyped spec may have key material where the id should be.
func checkID(id string) error {
	valid := id != "" && len(id) <= 32
	for _, c := range id {
		valid = valid && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-')
	}
	if !valid {
		return errors.New("bad key id: want 1 to 32 letters, digits, '.', '_' or '-'")
	}
	return nil
}

// decodeKey accepts standard or URL base64, padded or not (openssl writes padded standard).
func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("key is %d bytes, want %d (base64 of 32 random bytes)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("key is not base64")
}
