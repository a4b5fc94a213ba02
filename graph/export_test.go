package graph

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/span"
)

// What the external tests (package graph_test, which may import the
// subpackages that import graph) read of the package's internals.

// Epoch is the scenarios' start of event time (epoch).
var Epoch = epoch

// CapHits is m's counter of calls and runs folded by a cap (capHit).
func CapHits(m *Metrics) *prometheus.CounterVec { return m.capHit }

// traceOf holds spans as a pending trace does.
func traceOf(spans []span.Span) *pendingTrace {
	t := &pendingTrace{}
	for i := range spans {
		t.append(&spans[i])
	}
	return t
}
