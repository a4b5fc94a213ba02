//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStateDirLock: a second detector on a state directory in use fails
// with an error naming the directory and the holder's pid; once the
// first lets go, it may take it.
func TestStateDirLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	unlock, err := lockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockStateDir(dir)
	if err == nil {
		t.Fatal("a second lock on a state directory in use was granted")
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("error %q does not name the directory and the holder", msg)
	}
	unlock()
	unlock2, err := lockStateDir(dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
}
