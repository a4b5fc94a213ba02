package baselines

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/evidence"
)

// A service's own time, pooled over its operations. A service that slows
// down as a whole (its CPU, its runtime, its host) slows every operation
// it serves; on a quiet service each operation sees a few calls, too few
// for its own test, while together they are plain. The calls of different
// operations are different calls, so the log-likelihood ratios of their
// own times add up to that of "the service's own time shifted", and a
// CUSUM of the sums is the service's test. It costs one more test per
// service (for a service with one operation it repeats that operation's).
//
// When it crosses, every operation whose own statistic is positive is
// reported anomalous in its own time, with its own evidence and the
// service's added: the ranking reads it as it reads any operation's.

// seqService is the pooled test of one service.
type seqService struct {
	Lat    evidence.CUSUM
	Called int64 // unix ns of the end of the last window with calls
	// Alarm, Silent, Last and LastEnd are as for a series; LastOp names
	// the operation whose profile Last is (the one with the most
	// evidence when the episode began).
	Alarm, Silent bool
	Last          seqProfile
	LastOp        string
	LastEnd       int64
}

// opWeight is one operation's window in its service's test.
type opWeight struct {
	op    graph.OpKey
	calls float64
	w     seqWeight
}

func (s *seqService) reported() bool { return s.Alarm && !s.Silent }

// observeServices runs every service's pooled test on the weights of its
// operations' own time in window w, and adds to out the operations of a
// service in a reported episode (opAt: where out holds each operation's
// finding of this window). It also keeps reporting, and ends, the
// episodes of services that had no calls in w.
func (bs *Baselines) observeServices(w *graph.Window, weights map[string][]opWeight, out []Finding, opAt map[graph.OpKey]int) []Finding {
	start, end := w.Start.UnixNano(), w.End.UnixNano()
	armed := end-bs.first >= int64(SeqWarmUp)
	for _, svc := range graph.SortedKeys(weights, strings.Compare) {
		s := bs.seqSvc[svc]
		if s == nil {
			s = &seqService{}
			bs.seqSvc[svc] = s
		}
		var sum, calls, slow, far float64
		judged := false
		for _, ow := range weights[svc] {
			if !ow.w.ok {
				continue
			}
			judged = true
			lat := ow.w.lat
			if o := bs.seqOps[ow.op]; o.Alarm && o.Silent {
				lat = min(lat, 0) // its own episode is a known one
			}
			sum += lat
			calls, slow, far = calls+ow.calls, slow+ow.w.slow, far+ow.w.far
		}
		s.Called = end
		if judged {
			s.Lat.Step(sum, start, calls, slow, far)
		}
		if !s.Alarm && s.Lat.S >= SeqThreshold {
			s.Alarm = true
			top, p := bs.serviceProfile(svc)
			s.Silent = !armed || (s.LastEnd > 0 && start-s.LastEnd >= int64(seqRecurAfter) && top == s.LastOp && p.near(s.Last))
			s.Last, s.LastOp = p, top
		}
		if s.Alarm {
			s.Lat.S = min(s.Lat.S, seqCap*SeqThreshold)
			if s.Lat.S < SeqThreshold {
				s.Alarm, s.LastEnd = false, end
			}
		}
		if s.reported() {
			out = bs.reportService(svc, s, end, out, opAt)
		}
	}
	// Episodes of services without calls in w: still reported until the
	// service has had none for seqIdle, as a quiet series' are.
	for _, svc := range graph.SortedKeys(bs.seqSvc, strings.Compare) {
		s := bs.seqSvc[svc]
		if _, seen := weights[svc]; seen || !s.reported() {
			continue
		}
		if end-s.Called >= int64(seqIdle) {
			s.Alarm, s.LastEnd = false, end
			s.Lat.Reset()
			continue
		}
		out = bs.reportService(svc, s, end, out, opAt)
	}
	return out
}

// serviceOps returns the operations of svc the sequential check knows, in
// order.
func (bs *Baselines) serviceOps(svc string) []graph.OpKey {
	var ops []graph.OpKey
	for k := range bs.seqOps {
		if k.Service == svc {
			ops = append(ops, k)
		}
	}
	slices.SortFunc(ops, graph.CompareOp)
	return ops
}

// serviceProfile describes a service's episode by its operation with the
// most evidence: which one, and that operation's profile.
func (bs *Baselines) serviceProfile(svc string) (string, seqProfile) {
	var top graph.OpKey
	best := 0.0
	for _, k := range bs.serviceOps(svc) {
		if s := bs.seqOps[k].Lat.S; s > best {
			top, best = k, s
		}
	}
	if best == 0 {
		return "", seqProfile{}
	}
	return top.Operation, bs.seqOps[top].profile()
}

// reportService adds to out, for a service in a reported episode, each of
// its operations with evidence of its own (a positive statistic) that is
// not already active in this window.
func (bs *Baselines) reportService(svc string, s *seqService, end int64, out []Finding, opAt map[graph.OpKey]int) []Finding {
	for _, k := range bs.serviceOps(svc) {
		o := bs.seqOps[k]
		if o.Lat.S <= 0 {
			continue
		}
		i, ok := opAt[k]
		if ok && out[i].Score.Active {
			continue
		}
		lat := *o
		lat.Err = evidence.CUSUM{} // the service's test is of time only
		sc := lat.score(graph.KindSelfTime, end, 0)
		sc.Explanation += fmt.Sprintf("; %s as a whole: %.0f of %.0f calls over %s slow", svc, s.Lat.Hits, s.Lat.Calls, time.Duration(end-s.Lat.Start).Round(time.Second))
		if ok {
			out[i].Score = sc
			continue
		}
		k := k
		opAt[k] = len(out)
		out = append(out, Finding{Op: &k, Score: sc})
	}
	return out
}
