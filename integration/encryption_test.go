package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/keyring"
	"github.com/hookd/hookd/service"
	"github.com/hookd/hookd/signature"
)

// knownSecrets is an app and its subscriptions whose secrets and callback keys the test knows in
// plain text, to look for them in a dump and to verify deliveries with them.
type knownSecrets struct {
	app       testApp
	eventType string
	subs      []knownSub
	callback  *testenv.Receiver // receives the app's one-off callbacks, signed with its secret
}

type knownSub struct {
	id          string
	secrets     []string // every secret that must sign: the current one, then the previous one
	callbackKey string
	r           *testenv.Receiver
}

func newReceiver(t *testing.T) *testenv.Receiver {
	r := testenv.NewReceiver(nil)
	t.Cleanup(r.Close)
	return r
}

func mustSecret(t *testing.T) string {
	t.Helper()
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKeys(t *testing.T, spec string) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustGenerateKey(t *testing.T, id string) string {
	t.Helper()
	spec, err := keyring.Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// makeKnownSecrets creates, through the API, an app and two subscriptions with callback keys: one
// with a secret of the test's choosing, one whose secret is then rotated (so previous_secret is set).
func makeKnownSecrets(t *testing.T, s *stack, name string) *knownSecrets {
	t.Helper()
	k := &knownSecrets{app: s.newApp(name), eventType: name + ".happened", callback: newReceiver(t)}
	given := knownSub{secrets: []string{mustSecret(t)}, callbackKey: "cbk-given-" + mustSecret(t)[6:18], r: newReceiver(t)}
	d := s.must(s.call("POST", "/v1/subscriptions", k.app.Key, map[string]any{"url": given.r.URL, "eventTypes": []string{k.eventType},
		"secret": given.secrets[0], "callbackKey": given.callbackKey}), http.StatusCreated).Data()
	given.id = d["id"].(string)

	rotated := knownSub{callbackKey: "cbk-rotated-" + mustSecret(t)[6:18], r: newReceiver(t)}
	d = s.must(s.call("POST", "/v1/subscriptions", k.app.Key, map[string]any{"url": rotated.r.URL, "eventTypes": []string{k.eventType},
		"callbackKey": rotated.callbackKey}), http.StatusCreated).Data()
	rotated.id, rotated.secrets = d["id"].(string), []string{d["secret"].(string)}
	d = s.must(s.call("POST", "/v1/subscriptions/"+rotated.id+"/rotate-secret", k.app.Key, map[string]any{"graceMs": 3_600_000}), http.StatusOK).Data()
	rotated.secrets = []string{d["secret"].(string), rotated.secrets[0]}

	k.subs = []knownSub{given, rotated}
	return k
}

// addLegacySubscription writes a subscription the way hookd did before encryption: plain text.
func (k *knownSecrets) addLegacySubscription(t *testing.T, d *sqlx.DB) {
	t.Helper()
	sub := knownSub{id: "sub_legacy_" + strings.ToLower(mustSecret(t)[6:14]), secrets: []string{mustSecret(t)},
		callbackKey: "cbk-legacy-" + mustSecret(t)[6:18], r: newReceiver(t)}
	sub.id = strings.NewReplacer("+", "x", "/", "y").Replace(sub.id)
	if _, err := d.Exec(`INSERT INTO subscriptions (id, app_id, publisher_app_id, url, secret, callback_key, event_types)
		VALUES ($1, $2, $2, $3, $4, $5, ARRAY[$6])`, sub.id, k.app.ID, sub.r.URL, sub.secrets[0], sub.callbackKey, k.eventType); err != nil {
		t.Fatal(err)
	}
	k.subs = append(k.subs, sub)
}

// plainForms are the strings a dump must not contain: every secret and callback key as given, and
// each secret's key in the encodings a careless store would use (raw, base64, base64url, hex).
func (k *knownSecrets) plainForms(t *testing.T) [][]byte {
	var out [][]byte
	secret := func(s string) {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			t.Fatalf("secret not whsec_<base64>: %v", err)
		}
		out = append(out, []byte(s), []byte(strings.TrimPrefix(s, "whsec_")), raw,
			[]byte(base64.RawURLEncoding.EncodeToString(raw)), []byte(hex.EncodeToString(raw)))
	}
	secret(k.app.Secret)
	for _, sub := range k.subs {
		for _, s := range sub.secrets {
			secret(s)
		}
		out = append(out, []byte(sub.callbackKey))
	}
	return out
}

// checkDelivered publishes an event and a one-off callback and checks that every subscription's
// receiver got the event signed by each of its secrets with its callback key, and the callback
// arrived signed with the app's secret.
func (k *knownSecrets) checkDelivered(t *testing.T, s *stack, eventID string) {
	t.Helper()
	s.must(s.call("POST", "/v1/events", k.app.Key, map[string]any{"id": eventID, "type": k.eventType}), http.StatusCreated)
	for _, d := range s.waitDeliveries(k.app.Key, eventID, len(k.subs), 30*time.Second) {
		if d["status"] != "succeeded" {
			t.Errorf("%s: delivery %v", eventID, d)
		}
	}
	for _, sub := range k.subs {
		var got []testenv.Request
		for _, q := range sub.r.Requests() {
			if q.Header.Get("webhook-id") == k.app.ID+"/"+eventID {
				got = append(got, q)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s: %s got %d requests, want 1", eventID, sub.id, len(got))
			continue
		}
		for i, sec := range sub.secrets {
			if err := (signature.Verifier{Secret: sec}).Verify(got[0].Header, got[0].Body); err != nil {
				t.Errorf("%s: %s: secret %d does not verify: %v", eventID, sub.id, i+1, err)
			}
		}
		if n := len(strings.Fields(got[0].Header.Get("webhook-signature"))); n != len(sub.secrets) {
			t.Errorf("%s: %s: %d signatures, want %d", eventID, sub.id, n, len(sub.secrets))
		}
		if a := got[0].Header.Get("Authorization"); a != "Basic "+sub.callbackKey {
			t.Errorf("%s: %s: Authorization %q, want the callback key", eventID, sub.id, a)
		}
	}
	res := s.must(s.call("POST", "/v1/callbacks", k.app.Key, map[string]any{"url": k.callback.URL, "eventType": "vault.checked",
		"data": map[string]any{"event": eventID}}), http.StatusAccepted).Data()
	s.waitDeliveries(k.app.Key, res["requestId"].(string), 1, 30*time.Second)
	reqs := k.callback.Requests()
	if err := (signature.Verifier{Secret: k.app.Secret}).Verify(reqs[len(reqs)-1].Header, reqs[len(reqs)-1].Body); err != nil {
		t.Errorf("%s: callback not signed with the app's secret: %v", eventID, err)
	}
}

// pgDump finds pg_dump: on PATH, else in the Debian/Ubuntu server packages' directory.
func pgDump() string {
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	sort.Strings(found)
	if len(found) == 0 {
		return ""
	}
	return found[len(found)-1]
}

// backup dumps the apps and subscriptions tables the way a backup would: pg_dump --data-only, or,
// without pg_dump, every row as text through the driver.
func backup(t *testing.T, url string, d *sqlx.DB) []byte {
	t.Helper()
	if bin := pgDump(); bin != "" {
		out, err := exec.Command(bin, "--data-only", "--table=apps", "--table=subscriptions", "--dbname="+url).Output()
		if err == nil {
			if !bytes.Contains(out, []byte("COPY public.subscriptions")) {
				t.Fatalf("pg_dump printed no subscriptions:\n%s", out)
			}
			return out
		}
		t.Logf("%s failed (%v), dumping through the driver instead", bin, err)
	}
	var rows []string
	if err := d.Select(&rows, `SELECT t::text FROM apps t UNION ALL SELECT t::text FROM subscriptions t`); err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Join(rows, "\n"))
}

func assertNoPlainText(t *testing.T, dump []byte, k *knownSecrets) {
	t.Helper()
	for i, form := range k.plainForms(t) {
		if bytes.Contains(dump, form) {
			t.Errorf("the dump contains a secret in plain text (form %d)", i+1)
		}
	}
}

// sealedUnder counts the stored secrets sealed under key id and those that are not, in one database.
func sealedUnder(t *testing.T, d *sqlx.DB, id string) (under, other int) {
	t.Helper()
	prefix := "enc:v1:" + id + ":"
	var c struct {
		Under int `db:"under"`
		Other int `db:"other"`
	}
	err := d.Get(&c, `SELECT count(*) FILTER (WHERE starts_with(v, $1)) AS under, count(*) FILTER (WHERE NOT starts_with(v, $1)) AS other
		FROM (SELECT secret FROM apps UNION ALL SELECT secret FROM subscriptions UNION ALL SELECT previous_secret FROM subscriptions
			UNION ALL SELECT callback_key FROM subscriptions) AS s(v) WHERE v IS NOT NULL`, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return c.Under, c.Other
}

// Secrets, previous secrets, callback keys and app secrets are sealed in PostgreSQL: a backup of
// the tables shows none of them, and deliveries are still signed with them.
func TestSecretsEncryptedAtRest(t *testing.T) {
	s := newStack(t)
	k := makeKnownSecrets(t, s, "vault")
	k.checkDelivered(t, s, "vault-1")

	var stored []string
	if err := database.DB.Select(&stored, `SELECT v FROM (SELECT secret FROM apps WHERE id = $1
		UNION ALL SELECT unnest(ARRAY[secret, previous_secret, callback_key]) FROM subscriptions WHERE app_id = $1) AS s(v)
		WHERE v IS NOT NULL`, k.app.ID); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 6 { // the app's secret; two secrets, one previous secret, two callback keys
		t.Fatalf("%d stored values, want 6", len(stored))
	}
	for _, v := range stored {
		if !strings.HasPrefix(v, "enc:v1:"+testKeys.Current()+":") {
			t.Errorf("stored value is not sealed under %s: %.12s…", testKeys.Current(), v)
		}
	}
	assertNoPlainText(t, backup(t, database.URL, database.DB), k)
}

// Key rotation end to end: data sealed under k1 (and a row from before encryption) is read by
// processes holding k2,k1, re-sealed under k2 by `hookd rotate-encryption-key`, and then k1 can go.
func TestEncryptionKeyRotation(t *testing.T) {
	ctx := context.Background()
	// A database of its own: the rotation re-seals every row, and the other tests' rows are
	// sealed under the run's key.
	own, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Drop(context.Background()) })
	k1, k2 := mustGenerateKey(t, "k1"), mustGenerateKey(t, "k2")
	keys := func(spec string) func(*config.Config) {
		return func(c *config.Config) { c.DatabaseURL, c.EncryptionKeys = own.URL, mustKeys(t, spec) }
	}

	s1 := newStack(t, keys(k1))
	k := makeKnownSecrets(t, s1, "rotation")
	k.addLegacySubscription(t, own.DB)
	k.checkDelivered(t, s1, "rot-1") // the plain-text row is read as it is
	if under, other := sealedUnder(t, own.DB, "k1"); under != 6 || other != 2 {
		t.Errorf("under k1: %d sealed, %d not (want 6 and the legacy row's 2)", under, other)
	}
	// The control for the dump checks: the legacy row's secret is in it, until the rotation.
	legacy := k.subs[len(k.subs)-1]
	if !bytes.Contains(backup(t, own.URL, own.DB), []byte(legacy.secrets[0])) {
		t.Error("the dump does not show the plain-text legacy secret: the dump checks prove nothing")
	}
	if err := s1.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart with the new key first: it seals, k1 still opens.
	both := k2 + "," + k1
	s2 := newStack(t, keys(both))
	k.checkDelivered(t, s2, "rot-2")

	rotate := func(spec string, args ...string) (string, error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, hookdBinary(t), append([]string{"rotate-encryption-key"}, args...)...)
		cmd.Env = append(environWithout("HOOKD_ENCRYPTION_KEY", "HOOKD_DATABASE_URL"),
			"HOOKD_DATABASE_URL="+own.URL, "HOOKD_ENCRYPTION_KEY="+spec)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Batches of 2 rows, so the keyset walks several batches per table.
	out, err := rotate(both, "-batch", "2")
	if err != nil {
		t.Fatalf("rotate-encryption-key: %v\n%s", err, out)
	}
	t.Logf("rotate-encryption-key:\n%s", out)
	line := func(column string, total, plain int) string {
		return fmt.Sprintf("%-31s %d re-encrypted (%d of them were plain text)", column, total, plain)
	}
	for _, want := range []string{
		line("apps.secret", 1, 0), line("subscriptions.secret", 3, 1), line("subscriptions.previous_secret", 1, 0),
		line("subscriptions.callback_key", 3, 1), "every stored secret is sealed under k2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if under, other := sealedUnder(t, own.DB, "k2"); under != 8 || other != 0 {
		t.Errorf("after rotation: %d sealed under k2, %d not; want 8 and 0", under, other)
	}
	// Idempotent: a second run finds nothing to do.
	if out, err := rotate(both); err != nil || strings.Count(out, " 0 re-encrypted") != 4 {
		t.Errorf("second rotation (%v):\n%s", err, out)
	}
	k.checkDelivered(t, s2, "rot-3")
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}

	// k1 is gone: everything still opens under k2 alone, and nothing is in plain text any more
	// (the legacy row included).
	s3 := newStack(t, keys(k2))
	k.checkDelivered(t, s3, "rot-4")
	assertNoPlainText(t, backup(t, own.URL, own.DB), k)

	// A process given only a key that sealed nothing here says which key it lacks.
	k3 := mustGenerateKey(t, "k3")
	if out, err := rotate(k3); err == nil || !strings.Contains(out, `key "k2": sealed with a key the keyring does not hold`) {
		t.Errorf("rotation under an unrelated key: %v\n%s", err, out)
	}
}

// Every process that opens the repository refuses to start without a valid HOOKD_ENCRYPTION_KEY
// and says how to make one; `hookd gen-encryption-key` needs no configuration.
func TestRefusesToStartWithoutEncryptionKey(t *testing.T) {
	base := append(environWithout("HOOKD_ENCRYPTION_KEY", "HOOKD_DATABASE_URL", "HOOKD_HTTP_ADDR", "HOOKD_TASK_QUEUE"),
		"HOOKD_DATABASE_URL="+database.URL, "HOOKD_TEMPORAL_ADDRESS="+temporalServer.HostPort,
		"HOOKD_HTTP_ADDR=127.0.0.1:0", "HOOKD_TASK_QUEUE=refuse-"+t.Name())
	for _, c := range []struct{ spec, want string }{
		{"", "HOOKD_ENCRYPTION_KEY is not set"},
		{"k1:dG9vIHNob3J0", "HOOKD_ENCRYPTION_KEY: key 1 (k1): key is 9 bytes, want 32"},
		{"dG9vIHNob3J0", "HOOKD_ENCRYPTION_KEY: key 1: no key id"},
	} {
		for _, command := range []string{"api", "worker", "dev", "rotate-encryption-key"} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, hookdBinary(t), command)
			cmd.Env = base
			if c.spec != "" {
				cmd.Env = append(cmd.Env, "HOOKD_ENCRYPTION_KEY="+c.spec)
			}
			out, err := cmd.CombinedOutput()
			cancel()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), c.want) ||
				!strings.Contains(string(out), "hookd gen-encryption-key") {
				t.Errorf("hookd %s with HOOKD_ENCRYPTION_KEY=%q: %v\n%s", command, c.spec, err, out)
			}
		}
	}

	// In process too: service.Start is what every command that opens the repository goes through.
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.EncryptionKeys = database.URL, nil
	if _, err := service.Start(context.Background(), cfg, slog.New(slog.DiscardHandler), true, true); err == nil ||
		!strings.Contains(err.Error(), "HOOKD_ENCRYPTION_KEY is not set") {
		t.Errorf("service.Start without a key: %v", err)
	}

	cmd := exec.Command(hookdBinary(t), "gen-encryption-key", "-id", "k9")
	cmd.Env = environWithout("HOOKD_ENCRYPTION_KEY")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if k, err := keyring.Parse(strings.TrimSpace(string(out))); err != nil || k.Current() != "k9" {
		t.Errorf("gen-encryption-key printed %d bytes that do not parse as a key k9: %v", len(out), err)
	}
}

// environWithout is this process's environment without the named variables, for hookd processes
// that must not inherit them.
func environWithout(names ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}
