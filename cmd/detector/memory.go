package main

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/dustin/go-humanize"

	"github.com/causeway/causeway/graph"
)

// The memory budget: what the detector may hold in all. The graph's caps
// (pending spans, edges, operations) left unset are derived from it
// (graph.Config.WithBudget), and the Go runtime's soft memory limit is set
// to it, so the collector works harder before the container's limit is
// reached rather than after.
const (
	// containerShare of a container's memory limit is the budget: the
	// rest is for what the Go runtime does not account (thread stacks,
	// the kernel's buffers of the process).
	containerShare = 0.9
	// defaultBudget applies where nothing says how much memory there is:
	// no memory_budget, no GOMEMLIMIT, no container limit.
	defaultBudget = 2 << 30
)

// memoryBudget is a resolved budget and where it came from, for the log.
type memoryBudget struct {
	bytes  int64
	source string
	// setRuntime is whether the runtime's soft limit is ours to set:
	// not when GOMEMLIMIT set it.
	setRuntime bool
}

// parseBudget reads memory_budget: "auto" (or empty), or a size such as
// "1536MiB", "2GiB" or "3GB".
func parseBudget(s string) (bytes int64, auto bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "auto" {
		return 0, true, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, false, fmt.Errorf("memory_budget: %q is not auto or a size such as 1536MiB or 2GiB", s)
	}
	if n < graph.MinBudget {
		return 0, false, fmt.Errorf("memory_budget: %s is less than the %s the detector needs", humanize.IBytes(n), humanize.IBytes(graph.MinBudget))
	}
	if n > math.MaxInt64 {
		return 0, false, fmt.Errorf("memory_budget: %q is too large", s)
	}
	return int64(n), false, nil
}

// resolveBudget turns memory_budget into bytes: a size given is taken as
// is; auto takes GOMEMLIMIT when it is set, else containerShare of the
// container's memory limit (cgroup v1 or v2), else defaultBudget.
// container is memlimit.FromCgroup outside tests.
func resolveBudget(setting, gomemlimit string, container func() (uint64, error)) (memoryBudget, error) {
	b, err := budgetFrom(setting, gomemlimit != "", container)
	b.setRuntime = gomemlimit == ""
	return b, err
}

// budgetFrom is resolveBudget's bytes and source.
func budgetFrom(setting string, gomemlimit bool, container func() (uint64, error)) (memoryBudget, error) {
	n, auto, err := parseBudget(setting)
	if err != nil {
		return memoryBudget{}, err
	}
	if !auto {
		return memoryBudget{bytes: n, source: "memory_budget"}, nil
	}
	if gomemlimit {
		if limit := debug.SetMemoryLimit(-1); limit > 0 && limit < math.MaxInt64 {
			return memoryBudget{bytes: max(limit, graph.MinBudget), source: "GOMEMLIMIT"}, nil
		}
	}
	limit, err := container()
	switch {
	case err == nil && limit > 0 && limit < math.MaxInt64:
		return memoryBudget{bytes: max(int64(float64(limit)*containerShare), graph.MinBudget),
			source: fmt.Sprintf("%.0f%% of the container's limit of %s", containerShare*100, humanize.IBytes(limit))}, nil
	case err == nil, errors.Is(err, memlimit.ErrNoLimit), errors.Is(err, memlimit.ErrNoCgroup):
		return memoryBudget{bytes: defaultBudget, source: "the default (no container memory limit found)"}, nil
	default:
		return memoryBudget{bytes: defaultBudget, source: fmt.Sprintf("the default (the container's limit could not be read: %v)", err)}, nil
	}
}
