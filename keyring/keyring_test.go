package keyring

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func mustGenerate(t *testing.T, id string) string {
	t.Helper()
	spec, err := Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func mustParse(t *testing.T, spec string) *Keyring {
	t.Helper()
	k, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	k := mustParse(t, mustGenerate(t, "k1"))
	for _, plain := range []string{"", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "Basic key with spaces ünïcode", strings.Repeat("x", 4096)} {
		sealed, err := k.Seal(plain, "subscriptions.secret/sub_1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "enc:v1:k1:") || !IsSealed(sealed) || !k.IsCurrent(sealed) {
			t.Errorf("sealed form %q", sealed)
		}
		if plain != "" && strings.Contains(sealed, plain) {
			t.Errorf("sealed value contains the plain text")
		}
		got, err := k.Open(sealed, "subscriptions.secret/sub_1")
		if err != nil || got != plain {
			t.Errorf("Open = %q, %v; want %q", got, err, plain)
		}
	}
	a, _ := k.Seal("same", "x")
	b, _ := k.Seal("same", "x")
	if a == b {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
}

func TestOpenFails(t *testing.T) {
	k1 := mustGenerate(t, "k1")
	k := mustParse(t, k1)
	sealed, err := k.Seal("whsec_secret", "subscriptions.secret/sub_1")
	if err != nil {
		t.Fatal(err)
	}
	id, data, _ := split(sealed)
	raw, _ := base64.RawURLEncoding.DecodeString(data)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return version + id + ":" + base64.RawURLEncoding.EncodeToString(b)
	}
	for _, c := range []struct {
		name    string
		keyring *Keyring
		stored  string
		aad     string
		want    error
	}{
		{"wrong row", k, sealed, "subscriptions.secret/sub_2", ErrCorrupt},
		{"wrong column", k, sealed, "subscriptions.previous_secret/sub_1", ErrCorrupt},
		{"tampered nonce", k, flip(0), "subscriptions.secret/sub_1", ErrCorrupt},
		{"tampered ciphertext", k, flip(14), "subscriptions.secret/sub_1", ErrCorrupt},
		{"tampered tag", k, flip(len(raw) - 1), "subscriptions.secret/sub_1", ErrCorrupt},
		{"truncated", k, sealed[:len(sealed)-10], "subscriptions.secret/sub_1", ErrCorrupt},
		{"not base64", k, version + "k1:!!!", "subscriptions.secret/sub_1", ErrCorrupt},
		{"unknown key id", k, strings.Replace(sealed, ":k1:", ":k9:", 1), "subscriptions.secret/sub_1", ErrUnknownKey},
		{"same id, other key", mustParse(t, mustGenerate(t, "k1")), sealed, "subscriptions.secret/sub_1", ErrCorrupt},
		{"plain text", k, "whsec_secret", "subscriptions.secret/sub_1", ErrFormat},
		{"other version", k, "enc:v2:k1:abc", "subscriptions.secret/sub_1", ErrFormat},
		{"no key id", k, "enc:v1:abc", "subscriptions.secret/sub_1", ErrFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.keyring.Open(c.stored, c.aad)
			if !errors.Is(err, c.want) {
				t.Errorf("Open = %q, %v; want %v", got, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "whsec_secret") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := mustGenerate(t, "k1"), mustGenerate(t, "k2")
	old := mustParse(t, k1)
	sealedOld, _ := old.Seal("secret", "apps.secret/app_1")

	both := mustParse(t, k2+","+k1) // the new key first: it seals, the old one still opens
	if both.Current() != "k2" || fmt.Sprint(both.IDs()) != "[k2 k1]" {
		t.Fatalf("Current = %s, IDs = %v", both.Current(), both.IDs())
	}
	if both.IsCurrent(sealedOld) {
		t.Error("a value sealed with k1 is current under k2,k1")
	}
	if got, err := both.Open(sealedOld, "apps.secret/app_1"); err != nil || got != "secret" {
		t.Fatalf("old key after rotation: %q, %v", got, err)
	}
	sealedNew, err := both.Seal("secret", "apps.secret/app_1")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KeyID(sealedNew); id != "k2" || !both.IsCurrent(sealedNew) || both.CurrentPrefix() != "enc:v1:k2:" {
		t.Errorf("new value sealed with %q", id)
	}

	onlyNew := mustParse(t, k2) // once everything is re-sealed, the old key can go
	if got, err := onlyNew.Open(sealedNew, "apps.secret/app_1"); err != nil || got != "secret" {
		t.Errorf("new key alone: %q, %v", got, err)
	}
	if _, err := onlyNew.Open(sealedOld, "apps.secret/app_1"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("dropped key still opens: %v", err)
	}
}

func TestParse(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, c := range []struct {
		name, spec string
		ids        string // "" means Parse fails
		errHas     string
	}{
		{"one key", "k1:" + good, "[k1]", ""},
		{"two keys, spaces", " k2:" + good + " , k1:" + good, "[k2 k1]", ""},
		{"unpadded", "k1:" + strings.TrimRight(good, "="), "[k1]", ""},
		{"url base64", "k1:" + base64.URLEncoding.EncodeToString(make([]byte, 32)), "[k1]", ""},
		{"empty", "", "", "no key"},
		{"blanks", "  ", "", "no key"},
		{"bare key", good, "", "no key id"},
		{"empty id", ":" + good, "", "bad key id"},
		{"bad id", "k 1:" + good, "", "bad key id"},
		{"long id", strings.Repeat("k", 33) + ":" + good, "", "bad key id"},
		{"short key", "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "", "16 bytes"},
		{"not base64", "k1:not*base64", "", "not base64"},
		{"duplicate id", "k1:" + good + ",k1:" + good, "", "given twice"},
		{"trailing comma", "k1:" + good + ",", "", "key 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := Parse(c.spec)
			if c.ids == "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("Parse error %v, want one saying %q", err, c.errHas)
				}
				if strings.Contains(err.Error(), strings.TrimRight(good, "=")) {
					t.Errorf("error %q shows the key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(k.IDs()); got != c.ids {
				t.Errorf("IDs = %s, want %s", got, c.ids)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	a, b := mustGenerate(t, "k1"), mustGenerate(t, "k1")
	if a == b {
		t.Error("two generated keys are equal")
	}
	if _, err := Parse(a + "," + mustGenerate(t, "k2")); err != nil {
		t.Errorf("generated specs do not parse: %v", err)
	}
	if _, err := Generate("bad:id"); err == nil {
		t.Error("Generate accepted an id with a colon")
	}
}

// Printing or logging a keyring shows its key ids only.
func TestNeverPrintsKeys(t *testing.T) {
	spec := mustGenerate(t, "k1")
	k := mustParse(t, spec)
	material := strings.TrimSuffix(strings.SplitN(spec, ":", 2)[1], "=")
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "keys", k)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%+v", struct{ K *Keyring }{k}), logged.String()} {
		if strings.Contains(s, material) || !strings.Contains(s, "k1") {
			t.Errorf("printed as %q", s)
		}
	}
}
