package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// journalMode reads the SQLite file's header: bytes 18 and 19 (the write and read format
// versions) are 2 for a database in WAL mode and 1 for a rollback journal.
func journalMode(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, 20)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatalf("read the header of %s: %v", file, err)
	}
	switch {
	case h[18] == 2 && h[19] == 2:
		return "wal"
	case h[18] == 1 && h[19] == 1:
		return "rollback"
	}
	return "unknown"
}

// TestDevServerFileUsesWAL: a dev server on a file (the bench's -sqlite, the restart tests) opens it
// as `make dev` does, with a write-ahead log; an empty pragma list keeps the CLI's default, so the
// check can tell the two apart.
func TestDevServerFileUsesWAL(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		pragmas []string
		want    string
	}{
		{"default", nil, "wal"},
		{"no pragmas", []string{}, "rollback"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "temporal.db")
			srv, err := StartTemporalWith(ctx, TemporalOptions{DBFile: file, Pragmas: c.pragmas})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop()
			if got := journalMode(t, file); got != c.want {
				t.Fatalf("journal mode of %s: %s, want %s", file, got, c.want)
			}
			if _, err := os.Stat(file + "-wal"); (err == nil) != (c.want == "wal") {
				t.Errorf("%s-wal exists: %v, want %v", file, err == nil, c.want == "wal")
			}
		})
	}
}
