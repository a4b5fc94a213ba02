package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/pipeline"
)

// TestRestoreBaselinesOfAnotherWindow: a snapshot learned from windows of
// another length is not loaded: it is set aside under a name that says
// its window, one warning says why, and learning starts afresh.
func TestRestoreBaselinesOfAnotherWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), pipeline.BaselineFile)
	ten := baselines.New(nil)
	ten.SetWindow(10 * time.Second)
	if err := ten.SaveFile(path); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	twenty := baselines.New(nil)
	twenty.SetWindow(20 * time.Second)
	pipeline.RestoreBaselines(twenty, path, log)
	if _, err := os.Stat(path + ".window-10s"); err != nil {
		t.Errorf("snapshot not set aside as .window-10s: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("snapshot still in place: %v", err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "snapshot_window=10s window=20s") {
		t.Errorf("want one warning naming both windows, got:\n%s", logs.String())
	}
}
