package main

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand: `detector version` names the build and its Go.
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "causeway detector ") || !strings.Contains(s, " commit ") || !strings.Contains(s, runtime.Version()) {
		t.Errorf("version printed %q", s)
	}
}
