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
