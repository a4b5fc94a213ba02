package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good, err := os.ReadFile("../collector/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, to, err string
	}{
		{"the deployed config", "", "", ""},
		{"misspelt key", "partition_traces_by_id: true", "partition_trace_by_id: true", "invalid keys: partition_trace_by_id"},
		{"undefined processor", "processors: [memory_limiter, batch]", "processors: [memory_limiter, batch, attributes]", `processor "attributes"`},
		{"bad encoding type", "encoding: otlp_proto", "encoding: [otlp_proto]", "encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := string(good)
			if tc.from != "" {
				if !strings.Contains(cfg, tc.from) {
					t.Fatalf("collector.yaml has no %q to change", tc.from)
				}
				cfg = strings.Replace(cfg, tc.from, tc.to, 1)
			}
			path := filepath.Join(t.TempDir(), "collector.yaml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			err := run([]string{"validate", "--config=file:" + path})
			if tc.err == "" && err != nil {
				t.Fatalf("validate: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("validate: %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
