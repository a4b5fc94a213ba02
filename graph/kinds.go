package graph

import "github.com/causeway/causeway/model/baseline"

// Feature kinds: what each feature of an edge's or operation's windows
// measures. The ranking reasons on kinds; names are for people.
const (
	// KindP50, KindP90 and KindP99 are latency quantiles: of the calls as
	// the caller saw them on an edge, of the spans' durations on an
	// operation. The sequential check reports its latency evidence as
	// KindP50 (its current value is the calls' median).
	KindP50 baseline.Kind = iota + 1
	KindP90
	KindP99
	// KindErrors is the share of calls that failed.
	KindErrors
	// KindRate is the request rate: context, never anomalous itself.
	KindRate
	// KindGap is an edge's client-minus-server time: the network, or the
	// caller's own sending and receiving.
	KindGap
	// KindSelfTime is an operation's own time, its children's excluded.
	KindSelfTime
)

// IsLatency reports whether k is a latency quantile of calls or spans.
func IsLatency(k baseline.Kind) bool { return k == KindP50 || k == KindP90 || k == KindP99 }

// IsTail reports whether k is a tail quantile: a few slow calls move it.
func IsTail(k baseline.Kind) bool { return k == KindP90 || k == KindP99 }

// kindNames are the names people read for each kind of feature.
var kindNames = [...]string{
	KindP50: "p50", KindP90: "p90", KindP99: "p99", KindErrors: "error ratio",
	KindRate: "rate", KindGap: "client-server gap", KindSelfTime: "self time",
}

// KindName is the name people read for a kind of feature.
func KindName(k baseline.Kind) string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return ""
}

// KindNamed is the kind of feature people read as name; 0 for none. It
// reads scores written before they carried their kind.
func KindNamed(name string) baseline.Kind {
	for k, n := range kindNames {
		if n == name && n != "" {
			return baseline.Kind(k)
		}
	}
	return 0
}
