package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestGolden renders the first trace of every kind of user request, and the
// same requests under faults, as indented trees. The golden files double as
// documentation of what the simulator emits. Run with -update to rewrite.
func TestGolden(t *testing.T) {
	tests := []struct {
		file  string
		fault Fault
	}{
		{"traces.golden", Fault{}},
		{"traces_errors.golden", Fault{Kind: Errors, Target: "checkoutservice", Fraction: 1}},
		{"traces_dead_cart.golden", Fault{Kind: DeadInstance, Target: "cartservice"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg := Config{Seed: 1, Steady: true}
			if tt.fault.Kind != "" {
				cfg.Faults = []Fault{tt.fault}
			}
			r := simulate(t, cfg, 10*time.Second, 5*time.Second)
			var b strings.Builder
			if tt.fault.Kind != "" {
				fmt.Fprintf(&b, "fault %s\n\n", tt.fault)
			}
			seen := map[string]bool{}
			for _, tr := range r.traces {
				if seen[tr.root.Name] {
					continue
				}
				seen[tr.root.Name] = true
				fmt.Fprintf(&b, "trace %s\n", tr.root.TraceID)
				render(&b, tr, tr.root, tr.root.Start, 0)
				b.WriteByte('\n')
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("%s differs; run go test -run TestGolden -update and review the diff\ngot:\n%s", path, b.String())
			}
		})
	}
}

// render writes p and its subtree, one line per span: offset from the root
// start and duration in milliseconds, service, kind, name, and how it failed.
func render(b *strings.Builder, tr *trace, p *sp, t0 int64, depth int) {
	status := ""
	if p.Status == span.StatusError {
		status = "ERROR"
		if p.GRPCStatus > 0 {
			status += fmt.Sprintf(" grpc=%d", p.GRPCStatus)
		}
		if p.HTTPStatus > 0 {
			status += fmt.Sprintf(" http=%d", p.HTTPStatus)
		}
	}
	line := fmt.Sprintf("%9.3f %9.3f  %-*s%-22s %-8s %s %s", float64(p.Start-t0)/1e6, float64(p.Duration())/1e6,
		2*depth, "", p.Service, p.Kind, p.Name, status)
	b.WriteString(strings.TrimRight(line, " "))
	b.WriteByte('\n')
	kids := slices.Clone(tr.kids[p.SpanID])
	slices.SortFunc(kids, func(a, b *sp) int { return int(a.Start - b.Start) })
	for _, k := range kids {
		render(b, tr, k, t0, depth+1)
	}
}
