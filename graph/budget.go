package graph

// What each thing the caps bound costs the heap at most, measured in the
// repository (figures in docs/operations.md, "Sizing"). A memory budget is
// turned into caps by dividing a share of it by these.
// Pending spans are counted in bytes as they are held (pendingTrace.bytes,
// checked against the heap by TestPendingBytes), so they need no figure
// here.
const (
	// EdgeBytes and OperationBytes are an edge's and an operation's state
	// once every baseline's sample of past windows is full: baselines,
	// the graph's totals, exceedance references (BenchmarkScaleSteady,
	// with half an operation per edge, and BenchmarkScaleSteadyOneOp,
	// with one).
	EdgeBytes      = 5632
	OperationBytes = 6144
)

// Shares of a memory budget. Pending spans and series state are what
// grows with traffic and with the number of names; the rest of the budget
// is for what grows with neither (the runtime, Kafka fetches, decoding,
// open windows, API snapshots, incidents) and for the collector's headroom.
// Pending spans get the larger share: they are what grows with traffic
// (rate × trace_idle), and at their cap traces are joined early, which
// costs accuracy at once; series past their cap only fold new names.
const (
	pendingShare = 0.45
	seriesShare  = 0.30
)

// MinBudget is the smallest memory budget the caps can be derived from:
// below it, the share left for series would not hold a modest graph.
const MinBudget = 64 << 20

// SplitPending returns c with the pending caps divided between n
// aggregators that each hold a share of the traces (graph workers, a
// fleet member's partition workers). Caps left unset stay unset.
func (c Config) SplitPending(n int) Config {
	if n <= 1 {
		return c
	}
	if c.MaxPendingSpans > 0 {
		c.MaxPendingSpans = max(1, c.MaxPendingSpans/n)
	}
	if c.MaxPendingBytes > 0 {
		c.MaxPendingBytes = max(1, c.MaxPendingBytes/int64(n))
	}
	return c
}

// WithBudget returns c with each of MaxPendingBytes, MaxPendingSpans,
// MaxEdges and MaxOperations that is unset derived from a memory budget of
// budget bytes, so that those structures at their caps take at most
// pendingShare and seriesShare of it. The span cap is set where it never
// binds before the byte cap (every span costs at least a pendingSpan).
// Operations are capped at as many as edges: each operation is called
// over at least one edge, except entry points. Caps set explicitly are
// kept.
func (c Config) WithBudget(budget int64) Config {
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = max(1, int64(float64(budget)*pendingShare))
	}
	if c.MaxPendingSpans <= 0 {
		c.MaxPendingSpans = max(1, int(c.MaxPendingBytes/pendingSpanSize))
	}
	slots := max(1, int(float64(budget)*seriesShare/(EdgeBytes+OperationBytes)))
	if c.MaxEdges <= 0 {
		c.MaxEdges = slots
	}
	if c.MaxOperations <= 0 {
		c.MaxOperations = slots
	}
	return c
}
