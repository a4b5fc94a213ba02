package statefs

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFaultyFailsThenHeals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "state.json")
	var f Faulty
	if err := f.WriteFile(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	f.Fail(ErrNoSpace)
	if err := f.WriteFile(path, []byte("two")); !IsDiskFull(err) {
		t.Fatalf("write on a full disk: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("after a failed write the file holds %q, want the old %q", b, "one")
	}
	f.Fail(nil)
	if err := f.WriteFile(path, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "three" || f.Failed() != 1 {
		t.Errorf("file %q, %d failed writes", b, f.Failed())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestFaultLogRateLimits: one line when failures start, then at most one
// per Every with how many were not logged, one when writes work again.
func TestFaultLogRateLimits(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fl := &FaultLog{Log: slog.New(slog.NewTextHandler(&buf, nil)), What: "write checkpoint", Every: time.Minute, Now: func() time.Time { return now }}
	fl.Succeeded() // nothing failed: silent
	for range 120 {
		fl.Failed(ErrIO)
		now = now.Add(time.Second)
	}
	fl.Succeeded()
	fl.Succeeded()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{`msg="write checkpoint failed"`, `msg="write checkpoint still failing"`, `msg="write checkpoint works again"`}
	if len(lines) != 3 {
		t.Fatalf("%d lines for two minutes of failures, want 3:\n%s", len(lines), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s, want %s", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], "failures_since_last_log=60") || !strings.Contains(lines[2], "failed_for=2m0s") {
		t.Errorf("counts: %s / %s", lines[1], lines[2])
	}
}
