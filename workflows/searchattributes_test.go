package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/hookd/hookd/internal/testenv"
)

// Every place that registers hookd's search attributes on a Temporal server names exactly
// SearchAttributeNames: a name missing there is a workflow that fails to set it (or a start that is
// refused), an extra one is a leftover.
func TestSearchAttributeLists(t *testing.T) {
	want := slices.Sorted(slices.Values(SearchAttributeNames))
	if len(slices.Compact(slices.Clone(want))) != 5 {
		t.Fatalf("SearchAttributeNames %v: want the five distinct Attr* keys", SearchAttributeNames)
	}
	if got := slices.Sorted(slices.Values(testenv.SearchAttributes)); !slices.Equal(got, want) {
		t.Errorf("testenv.SearchAttributes = %v, want %v", got, want)
	}
	name := regexp.MustCompile(`\bHookd[A-Za-z]+\b`)
	for _, f := range []string{"scripts/dev.sh", "scripts/temporal-server.sh", "docker-compose.yml",
		"deploy/helm/hookd/templates/NOTES.txt"} {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Compact(slices.Sorted(slices.Values(name.FindAllString(string(b), -1))))
		if !slices.Equal(got, want) {
			t.Errorf("%s names the search attributes %v, want %v (workflows.SearchAttributeNames)", f, got, want)
		}
	}
}
