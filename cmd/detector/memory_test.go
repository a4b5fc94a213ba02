package main

import (
	"errors"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/causeway/causeway/graph"
)

func TestParseBudget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		auto bool
		err  string
	}{
		{in: "", auto: true},
		{in: "auto", auto: true},
		{in: " 1536MiB ", want: 1536 << 20},
		{in: "2GiB", want: 2 << 30},
		{in: "3GB", want: 3_000_000_000},
		{in: "lots", err: "not auto or a size"},
		{in: "1MiB", err: "less than"},
		{in: "-5GiB", err: "not auto or a size"},
	} {
		got, auto, err := parseBudget(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "memory_budget") {
				t.Errorf("parseBudget(%q) error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || auto != tc.auto {
			t.Errorf("parseBudget(%q) = %d, %v, %v; want %d, %v", tc.in, got, auto, err, tc.want, tc.auto)
		}
	}
}

func TestResolveBudget(t *testing.T) {
	limit := func(n uint64, err error) func() (uint64, error) {
		return func() (uint64, error) { return n, err }
	}
	// GOMEMLIMIT is read back from the runtime, as the runtime parsed it.
	prev := debug.SetMemoryLimit(3 << 30)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })

	for _, tc := range []struct {
		name, setting, gomemlimit string
		container                 func() (uint64, error)
		want                      int64
		setRuntime                bool
		from                      string
	}{
		{name: "explicit size wins", setting: "1GiB", gomemlimit: "3GiB", container: limit(8<<30, nil),
			want: 1 << 30, from: "memory_budget"},
		{name: "explicit size sets the runtime limit", setting: "1GiB", container: limit(8<<30, nil),
			want: 1 << 30, setRuntime: true, from: "memory_budget"},
		{name: "GOMEMLIMIT before the container", setting: "auto", gomemlimit: "3GiB", container: limit(8<<30, nil),
			want: 3 << 30, from: "GOMEMLIMIT"},
		{name: "share of the container's limit", setting: "auto", container: limit(10<<30, nil),
			want: 9 << 30, setRuntime: true, from: "container"},
		{name: "small container still gets the minimum", setting: "auto", container: limit(32<<20, nil),
			want: graph.MinBudget, setRuntime: true, from: "container"},
		{name: "no limit", setting: "auto", container: limit(0, memlimit.ErrNoLimit),
			want: defaultBudget, setRuntime: true, from: "no container memory limit"},
		{name: "no cgroup", setting: "auto", container: limit(0, memlimit.ErrNoCgroup),
			want: defaultBudget, setRuntime: true, from: "no container memory limit"},
		{name: "unreadable cgroup", setting: "auto", container: limit(0, errors.New("permission denied")),
			want: defaultBudget, setRuntime: true, from: "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveBudget(tc.setting, tc.gomemlimit, tc.container)
			if err != nil {
				t.Fatal(err)
			}
			if got.bytes != tc.want || got.setRuntime != tc.setRuntime || !strings.Contains(got.source, tc.from) {
				t.Errorf("got %d bytes from %q (set runtime %v), want %d from %q (set runtime %v)",
					got.bytes, got.source, got.setRuntime, tc.want, tc.from, tc.setRuntime)
			}
		})
	}
	if _, err := resolveBudget("12", "", limit(0, memlimit.ErrNoLimit)); err == nil {
		t.Error("a budget of 12 bytes was accepted")
	}
}

// The caps a budget derives are what the graph then enforces, and caps
// set in the configuration are kept.
func TestBudgetDerivesCaps(t *testing.T) {
	cfg := defaultConfig()
	cfg.Graph.MaxEdges = 1234
	got := cfg.Graph.WithBudget(1 << 30)
	if got.MaxEdges != 1234 {
		t.Errorf("max_edges set to 1234 became %d", got.MaxEdges)
	}
	if got.MaxPendingSpans <= 0 || got.MaxPendingBytes <= 0 || got.MaxOperations <= 0 {
		t.Fatalf("caps not derived: %+v", got)
	}
	if used := got.MaxPendingBytes + int64(got.MaxOperations)*(graph.EdgeBytes+graph.OperationBytes); used > 1<<30 {
		t.Errorf("caps at full take %d bytes, over the 1GiB budget", used)
	}
	half := cfg.Graph.WithBudget(1 << 29)
	if half.MaxPendingBytes >= got.MaxPendingBytes || half.MaxOperations >= got.MaxOperations {
		t.Errorf("a smaller budget did not lower the caps: %+v vs %+v", half, got)
	}
}
