package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
)

// Histories, not deliveries: "replay" in this file is Temporal's replay of a recorded workflow
// history (worker.WorkflowReplayer); replay.go's ReplayWorkflow re-sends deliveries.
//
// Every recorded history in testdata must replay with today's code: a history that no longer
// replays is a deploy that would fail running workflows with non-determinism errors. Histories are
// recorded by integration.TestRecordHistories (see the README, "Changing a workflow").
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			replayer := worker.NewWorkflowReplayer()
			Register(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
