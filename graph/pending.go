package graph

import (
	"container/heap"

	"github.com/causeway/causeway/span"
)

// pendingTrace is a trace whose spans are still arriving.
type pendingTrace struct {
	id      span.TraceID
	spans   []span.Span
	lastEnd int64 // latest span end seen in the trace
}

// pending buffers spans per trace until the trace is finished: until the
// stream's event time has moved ttl past the trace's last span, or the store
// is over its cap and the trace is the oldest. It holds at most maxSpans
// spans; the caller evicts through popExpired and popOldest.
type pending struct {
	traces map[span.TraceID]*pendingTrace
	queue  expiryQueue
	nSpans int
	free   []*pendingTrace // recycled entries, to keep span slices
}

func newPending() *pending {
	return &pending{traces: make(map[span.TraceID]*pendingTrace)}
}

// add buffers s in its trace.
func (p *pending) add(s *span.Span) {
	t, ok := p.traces[s.TraceID]
	if !ok {
		if n := len(p.free); n > 0 {
			t, p.free = p.free[n-1], p.free[:n-1]
		} else {
			t = &pendingTrace{}
		}
		t.id, t.lastEnd = s.TraceID, s.End
		p.traces[s.TraceID] = t
		heap.Push(&p.queue, expiryItem{at: s.End, t: t})
	}
	t.spans = append(t.spans, *s)
	t.lastEnd = max(t.lastEnd, s.End)
	p.nSpans++
}

// popExpired removes and returns one trace whose last span ended at or
// before cutoff, or nil when there is none.
func (p *pending) popExpired(cutoff int64) *pendingTrace {
	for len(p.queue) > 0 {
		it := p.queue[0]
		if it.at > cutoff {
			return nil
		}
		heap.Pop(&p.queue)
		if it.t.lastEnd != it.at { // the trace grew since it was queued
			heap.Push(&p.queue, expiryItem{at: it.t.lastEnd, t: it.t})
			continue
		}
		return p.remove(it.t)
	}
	return nil
}

// popOldest removes and returns the trace with the earliest last span end,
// or nil when the store is empty.
func (p *pending) popOldest() *pendingTrace {
	for len(p.queue) > 0 {
		it := heap.Pop(&p.queue).(expiryItem)
		if it.t.lastEnd != it.at {
			heap.Push(&p.queue, expiryItem{at: it.t.lastEnd, t: it.t})
			continue
		}
		return p.remove(it.t)
	}
	return nil
}

func (p *pending) remove(t *pendingTrace) *pendingTrace {
	delete(p.traces, t.id)
	p.nSpans -= len(t.spans)
	return t
}

// recycle returns a trace taken from the store for reuse.
func (p *pending) recycle(t *pendingTrace) {
	clear(t.spans) // drop string references
	t.spans = t.spans[:0]
	if cap(t.spans) <= 256 && len(p.free) < 4096 {
		p.free = append(p.free, t)
	}
}

type expiryItem struct {
	at int64
	t  *pendingTrace
}

// expiryQueue is a min-heap of traces by last span end. Entries go stale
// when a trace grows; they are requeued lazily when they reach the top.
type expiryQueue []expiryItem

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiryItem)) }
func (q *expiryQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = expiryItem{}
	*q = old[:len(old)-1]
	return it
}
