package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The README's configuration table is the documentation of this struct: every variable load
// reads has a row, every row names a variable load reads, and every default the table states is the one load applies (setting the
// variable to the stated default changes nothing).
func TestREADMEConfigurationTableAgrees(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(HOOKD_[A-Z_]+)` \\| (.*?) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = m[2]
	}
	for _, m := range regexp.MustCompile(`"(HOOKD_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		if _, ok := documented[m[1]]; !ok {
			t.Errorf("%s is read by config.load but has no row in the README's configuration table", m[1])
		}
	}
	// The reverse: a documented variable that load never asks for is a setting that silently does
	// nothing (HOOKD_RATE_LIMIT and HOOKD_METRICS_TOKEN were, for a while).
	read := map[string]bool{}
	base, err := load(func(k string) string { read[k] = true; return "" })
	if err != nil {
		t.Fatal(err)
	}
	for name := range documented {
		if !read[name] {
			t.Errorf("%s has a row in the README's configuration table but config.load never reads it", name)
		}
	}
	literal := regexp.MustCompile("^`([^`$]*)`$")
	checked := 0
	for name, def := range documented {
		m := literal.FindStringSubmatch(strings.TrimSpace(def))
		if m == nil {
			continue // "(none)", or a default made from another variable
		}
		got, err := load(func(k string) string {
			if k == name {
				return m[1]
			}
			return ""
		})
		if err != nil {
			t.Errorf("%s=%q (the README's default): %v", name, m[1], err)
			continue
		}
		if !reflect.DeepEqual(got, base) {
			t.Errorf("the README says %s defaults to %q, but setting it to that changes the configuration", name, m[1])
		}
		checked++
	}
	if checked < 20 {
		t.Errorf("only %d defaults checked: is the table's format still `| `NAME` | `default` | … |`?", checked)
	}
}
