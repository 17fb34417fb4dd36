package scripts

import (
	"os"
	"strings"
	"testing"

	"github.com/hookd/hookd/internal/testenv"
)

// TestDevServerPragmasMatchTestenv: `make dev` opens its dev server's SQLite file with the pragmas
// the tests and the bench use (testenv.SQLitePragmas, whose test checks the file really is in WAL
// mode), so what the bench measures with -sqlite is what a developer runs.
func TestDevServerPragmasMatchTestenv(t *testing.T) {
	raw, err := os.ReadFile("dev.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range testenv.SQLitePragmas {
		if !strings.Contains(string(raw), "--sqlite-pragma "+p) {
			t.Errorf("scripts/dev.sh does not start the dev server with --sqlite-pragma %s", p)
		}
	}
}

// TestDevHookdStartsGoroutinesWithAdaptiveStacks: make dev's hookd runs with
// GODEBUG=adaptivestackstart=1 (an environment setting only: the runtime has no //go:debug
// directive for it), keeping a GODEBUG the developer set.
func TestDevHookdStartsGoroutinesWithAdaptiveStacks(t *testing.T) {
	raw, err := os.ReadFile("dev.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(raw)
	set := strings.Index(script, `export GODEBUG="${GODEBUG:+$GODEBUG,}adaptivestackstart=1"`)
	run := strings.Index(script, `"$DEV_HOOKD_BIN" dev`)
	if set < 0 || run < 0 || set > run {
		t.Fatalf("dev.sh does not export GODEBUG with adaptivestackstart=1 before it runs hookd dev (at %d, hookd at %d)", set, run)
	}
}
