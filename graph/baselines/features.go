package baselines

import (
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/baseline"
)

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
		return baseline.Feature{Name: graph.KindName(kind), Kind: kind, Unit: "ms", Scale: baseline.Log, MinSpread: spread, MinAbs: 2, MinRel: 0.2, Tail: graph.IsTail(kind)}
	}
	return []baseline.Feature{
		lat(graph.KindP50, 0.04), tail(lat(graph.KindP90, 0.05), 0.3), tail(lat(graph.KindP99, 0.08), 0.5),
		{Name: graph.KindName(graph.KindErrors), Kind: graph.KindErrors, Unit: "%", Percent: true, MinSpread: 0.01, MinAbs: 3, MinRel: 0.5, MinEvents: MinErrorEvents},
		{Name: graph.KindName(graph.KindRate), Kind: graph.KindRate, Unit: "/s", Scale: baseline.Log, Direction: baseline.Context, MinSpread: 0.05},
	}
}

// EdgeFeatures are the features of an edge's windows: latency quantiles as
// the caller saw them, error ratio, request rate (context) and the
// client-minus-server gap.
func EdgeFeatures() []baseline.Feature {
	return append(latencyFeatures(), baseline.Feature{Name: graph.KindName(graph.KindGap), Kind: graph.KindGap, Unit: "ms", MinSpread: 0.3, MinAbs: 2, MinRel: 0.5})
}

// OpFeatures are the features of an operation's windows: duration
// quantiles, error ratio, rate (context) and median self time (the median,
// as one slow call moves a mean of a few).
func OpFeatures() []baseline.Feature {
	return append(latencyFeatures(), baseline.Feature{Name: graph.KindName(graph.KindSelfTime), Kind: graph.KindSelfTime, Unit: "ms", Scale: baseline.Log, MinSpread: 0.05, MinAbs: 2, MinRel: 0.2})
}
