package config

import (
	"strings"
	"testing"

	"github.com/hookd/hookd/keyring"
)

func TestEncryptionKey(t *testing.T) {
	k1, err := keyring.Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := keyring.Generate("k2")
	for _, c := range []struct {
		name, spec string
		loadErr    string // "" when Load succeeds
		current    string // "" when RequireEncryptionKeys fails
	}{
		{"unset", "", "", ""},
		{"one key", k1, "", "k1"},
		{"rotating", k2 + "," + k1, "", "k2"},
		{"malformed", "k1:tooshort", "HOOKD_ENCRYPTION_KEY: key 1 (k1): ", ""},
		{"bare key", strings.TrimPrefix(k1, "k1:"), "HOOKD_ENCRYPTION_KEY: key 1: no key id", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := load(func(k string) string {
				if k == "HOOKD_ENCRYPTION_KEY" {
					return c.spec
				}
				return ""
			})
			if c.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.loadErr) {
					t.Fatalf("load error %v, want %q", err, c.loadErr)
				}
				if strings.Contains(err.Error(), strings.TrimPrefix(k1, "k1:")) {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			keys, err := cfg.RequireEncryptionKeys()
			if c.current == "" {
				// The refusal says how to make a key.
				if err == nil || !strings.Contains(err.Error(), "HOOKD_ENCRYPTION_KEY is not set") ||
					!strings.Contains(err.Error(), "hookd gen-encryption-key") || !strings.Contains(err.Error(), "openssl rand -base64 32") {
					t.Fatalf("RequireEncryptionKeys error %v", err)
				}
				return
			}
			if err != nil || keys.Current() != c.current {
				t.Fatalf("RequireEncryptionKeys = %v, %v; want current key %s", keys, err, c.current)
			}
		})
	}
}

// The API's limits and the metrics token come from the environment.
func TestLimitsAndMetricsToken(t *testing.T) {
	env := map[string]string{"HOOKD_RATE_LIMIT": "1.5", "HOOKD_RATE_BURST": "1", "HOOKD_METRICS_TOKEN": "m-secret"}
	cfg, err := load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit != 1.5 || cfg.RateBurst != 1 || cfg.MetricsToken != "m-secret" {
		t.Errorf("RateLimit %v, RateBurst %d, MetricsToken %q", cfg.RateLimit, cfg.RateBurst, cfg.MetricsToken)
	}
	def, err := load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if def.RateLimit != 1000 || def.RateBurst != 2000 || def.MetricsToken != "" {
		t.Errorf("defaults: RateLimit %v, RateBurst %d, MetricsToken %q", def.RateLimit, def.RateBurst, def.MetricsToken)
	}
	for _, bad := range []map[string]string{{"HOOKD_RATE_LIMIT": "-1"}, {"HOOKD_RATE_BURST": "0"}, {"HOOKD_RATE_LIMIT": "NaN"}} {
		if _, err := load(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
