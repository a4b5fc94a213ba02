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

// isLatency reports whether k is a latency quantile of calls or spans.
func isLatency(k baseline.Kind) bool { return k == KindP50 || k == KindP90 || k == KindP99 }

// isTail reports whether k is a tail quantile: a few slow calls move it.
func isTail(k baseline.Kind) bool { return k == KindP90 || k == KindP99 }

// tail raises a tail quantile's minimum relative effect: a few slow calls
// move it, so it must move more to count.
func tail(f baseline.Feature, minRel float64) baseline.Feature {
	f.MinRel = minRel
	return f
}

// MinErrorEvents is the fewest failed calls a window needs before the
// regime baselines may call its error ratio anomalous: one error in five
// calls is not an incident on its own. Below it a window says nothing of
// its errors there, and only the sequential check weighs them.
const MinErrorEvents = 3

func latencyFeatures() []baseline.Feature {
	lat := func(kind baseline.Kind, spread float64) baseline.Feature {
		return baseline.Feature{Name: kindName(kind), Kind: kind, Unit: "ms", Scale: baseline.Log, MinSpread: spread, MinAbs: 2, MinRel: 0.2, Tail: isTail(kind)}
	}
	return []baseline.Feature{
		lat(KindP50, 0.04), tail(lat(KindP90, 0.05), 0.3), tail(lat(KindP99, 0.08), 0.5),
		{Name: kindName(KindErrors), Kind: KindErrors, Unit: "%", Percent: true, MinSpread: 0.01, MinAbs: 3, MinRel: 0.5, MinEvents: MinErrorEvents},
		{Name: kindName(KindRate), Kind: KindRate, Unit: "/s", Scale: baseline.Log, Direction: baseline.Context, MinSpread: 0.05},
	}
}

// EdgeFeatures are the features of an edge's windows: latency quantiles as
// the caller saw them, error ratio, request rate (context) and the
// client-minus-server gap.
func EdgeFeatures() []baseline.Feature {
	return append(latencyFeatures(), baseline.Feature{Name: kindName(KindGap), Kind: KindGap, Unit: "ms", MinSpread: 0.3, MinAbs: 2, MinRel: 0.5})
}

// OpFeatures are the features of an operation's windows: duration
// quantiles, error ratio, rate (context) and median self time (the median,
// as one slow call moves a mean of a few).
func OpFeatures() []baseline.Feature {
	return append(latencyFeatures(), baseline.Feature{Name: kindName(KindSelfTime), Kind: KindSelfTime, Unit: "ms", Scale: baseline.Log, MinSpread: 0.05, MinAbs: 2, MinRel: 0.2})
}

// kindNames are the names people read for each kind of feature.
var kindNames = [...]string{
	KindP50: "p50", KindP90: "p90", KindP99: "p99", KindErrors: "error ratio",
	KindRate: "rate", KindGap: "client-server gap", KindSelfTime: "self time",
}

// kindName is the name people read for a kind of feature.
func kindName(k baseline.Kind) string {
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
