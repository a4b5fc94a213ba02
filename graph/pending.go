package graph

import (
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
			// Room for a typical trace: growing from empty took four
			// allocations per trace.
			t = &pendingTrace{spans: make([]span.Span, 0, 8)}
		}
		t.id, t.lastEnd = s.TraceID, s.End
		p.traces[s.TraceID] = t
		p.queue.push(expiryItem{at: s.End, t: t})
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
		p.queue.pop()
		if it.t.lastEnd != it.at { // the trace grew since it was queued
			p.queue.push(expiryItem{at: it.t.lastEnd, t: it.t})
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
		it := p.queue.pop()
		if it.t.lastEnd != it.at {
			p.queue.push(expiryItem{at: it.t.lastEnd, t: it.t})
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

// release lets go of the memory the store kept for reuse (recycled traces,
// the index's and queue's room), once it is empty: after a flush, what a
// burst of traffic grew is returned rather than held for good.
func (p *pending) release() {
	if len(p.traces) > 0 {
		return
	}
	p.traces, p.queue, p.free = make(map[span.TraceID]*pendingTrace), nil, nil
}

// maxFree bounds the recycled traces kept (each with its span slice).
const maxFree = 4096

// recycle returns a trace taken from the store for reuse.
func (p *pending) recycle(t *pendingTrace) {
	clear(t.spans) // drop string references
	t.spans = t.spans[:0]
	// A huge trace's slice is let go.
	if cap(t.spans) <= 256 && len(p.free) < maxFree {
		p.free = append(p.free, t)
	}
}

type expiryItem struct {
	at int64
	t  *pendingTrace
}

// expiryQueue is a min-heap of traces by last span end. Entries go stale
// when a trace grows; they are requeued lazily when they reach the top.
//
// It is typed rather than built on container/heap, whose Push and Pop pass
// items as interfaces: boxing each 16-byte item was a third of the
// pipeline's allocations (about 0.25 per span in BenchmarkDecodeAggregate).
type expiryQueue []expiryItem

func (q *expiryQueue) push(it expiryItem) {
	*q = append(*q, it)
	h := *q
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

// pop removes and returns the earliest item; the queue must not be empty.
func (q *expiryQueue) pop() expiryItem {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = expiryItem{}
	h = h[:last]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < len(h) && h[l].at < h[small].at {
			small = l
		}
		if r := l + 1; r < len(h) && h[r].at < h[small].at {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	*q = h
	return top
}
