package graph

import (
	"unsafe"

	"github.com/causeway/causeway/span"
)

// pendingSpan is what joining a trace needs of one of its spans, held
// compactly while the trace is pending: 72 bytes against span.Span's 200,
// and pending spans are most of the detector's memory under load. The
// trace id is the trace's; status, HTTP and gRPC codes are reduced to
// whether the span failed; peer attributes become the peer node, kept
// beside the trace's spans for the spans that name one. Fields are
// exported for the checkpoint's gob stream.
type pendingSpan struct {
	SpanID, ParentID span.ID
	Service, Name    string // interned by the decoder: shared, not copied
	Start, End       int64
	Peer             int32 // 1 + index of the span's peer node in its trace's peers; 0: none
	Kind             span.Kind
	Failed           bool
}

func (s *pendingSpan) duration() int64 { return s.End - s.Start }

// pendingTrace is a trace whose spans are still arriving.
type pendingTrace struct {
	id      span.TraceID
	spans   []pendingSpan
	peers   []Node // the peer nodes spans name, by pendingSpan.Peer
	lastEnd int64  // latest span end seen in the trace
}

// append adds s to the trace. Its peer node is kept only where joining
// can use it: on spans that call out (client, producer, unspecified) and
// on spans naming a queue, which place the queue between producer and
// consumer. A server span's server.address names itself, not a peer.
func (t *pendingTrace) append(s *span.Span) {
	ps := pendingSpan{SpanID: s.SpanID, ParentID: s.ParentID, Service: s.Service, Name: s.Name,
		Start: s.Start, End: s.End, Kind: s.Kind, Failed: s.Failed()}
	if n, ok := peerOf(s); ok && (callsOut(s.Kind) || n.Kind == NodeQueue) {
		t.peers = append(t.peers, n)
		ps.Peer = int32(len(t.peers))
	}
	t.spans = append(t.spans, ps)
}

// peer returns the peer node s names, if it names one.
func (t *pendingTrace) peer(s *pendingSpan) (Node, bool) {
	if s.Peer == 0 {
		return Node{}, false
	}
	return t.peers[s.Peer-1], true
}

// What a pending trace holds, as the memory budget counts it: its
// entry in the index (key, pointer and the map's empty room), its queue
// item (and the queue's spare room) and the struct itself, then its
// slices' capacity, with the most the allocator rounds a size up by
// (an eighth). TestPendingBytes checks the sum against the heap.
const (
	traceOverhead   = 256
	pendingSpanSize = int64(unsafe.Sizeof(pendingSpan{}))
	peerNodeSize    = int64(unsafe.Sizeof(Node{}))
)

// bytes is what t holds of the heap, its slices' spare room included, as
// the cap on pending bytes counts it. Spare room matters: a trace of one
// span still holds a slice with room for several.
func (t *pendingTrace) bytes() int64 { return traceBytes(cap(t.spans), cap(t.peers)) }

// traceBytes is bytes for a trace with room for spans spans and peers
// peer nodes.
func traceBytes(spans, peers int) int64 {
	b := int64(spans)*pendingSpanSize + int64(peers)*peerNodeSize
	return traceOverhead + b + b/8
}

// callsOut reports whether a span of kind k may call a peer that is not
// instrumented: a client, a producer, or a span that does not say.
func callsOut(k span.Kind) bool {
	return k == span.KindClient || k == span.KindProducer || k == span.KindUnspecified
}

// pending buffers spans per trace until the trace is finished: until the
// stream's event time has moved ttl past the trace's last span, or the store
// is over its caps and the trace is the oldest. The caller holds it under
// its caps (spans and bytes) through popExpired and popOldest.
type pending struct {
	traces map[span.TraceID]*pendingTrace
	queue  expiryQueue
	nSpans int
	nBytes int64 // the traces' bytes(), summed
	// free holds recycled traces, to keep their span slices, by the
	// class of their room (freeClass).
	free [freeClasses][]*pendingTrace
}

func newPending() *pending {
	return &pending{traces: make(map[span.TraceID]*pendingTrace)}
}

// add buffers s in its trace.
func (p *pending) add(s *span.Span) {
	t, ok := p.traces[s.TraceID]
	if !ok {
		if n := len(p.free[0]); n > 0 {
			t, p.free[0] = p.free[0][n-1], p.free[0][:n-1]
		} else {
			// Room for a small trace: growing from empty took several
			// allocations per trace, and room for more would be spare
			// memory in the many traces of a few spans (the byte cap
			// counts it).
			t = &pendingTrace{spans: make([]pendingSpan, 0, 4)}
		}
		t.id, t.lastEnd = s.TraceID, s.End
		p.traces[s.TraceID] = t
		p.queue.push(expiryItem{at: s.End, t: t})
		p.nBytes += t.bytes()
	}
	sc, pc := cap(t.spans), cap(t.peers)
	if len(t.spans) == sc {
		p.grow(t)
	}
	t.append(s)
	if cap(t.spans) != sc || cap(t.peers) != pc {
		p.nBytes += t.bytes() - traceBytes(sc, pc)
	}
	t.lastEnd = max(t.lastEnd, s.End)
	p.nSpans++
}

// put adds a whole trace, as a checkpoint held it.
func (p *pending) put(t *pendingTrace, at int64) {
	p.traces[t.id] = t
	p.queue.push(expiryItem{at: at, t: t})
	p.nSpans += len(t.spans)
	p.nBytes += t.bytes()
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
	p.nBytes -= t.bytes()
	return t
}

// release lets go of the memory the store kept for reuse (recycled traces,
// the index's and queue's room), once it is empty: after a flush, what a
// burst of traffic grew is returned rather than held for good.
func (p *pending) release() {
	if len(p.traces) > 0 {
		return
	}
	p.traces, p.queue, p.free = make(map[span.TraceID]*pendingTrace), nil, [freeClasses][]*pendingTrace{}
}

// Recycled traces are kept by the room of their span slices: up to 8,
// 32, 128 and 512 spans, at most freeRoom spans of room in each class
// (about 4.5 MiB of pendingSpans), outside the pending caps. A new trace
// takes one of the smallest class; one that fills its room trades its
// slice for the smallest larger one kept, rather than growing it (a
// trace of a hundred spans grew five times, and under a concurrent
// collection each growth's copy is a barrier per pointer).
const (
	freeClasses  = 4
	freeRoom     = 1 << 16
	maxFreeSpans = 8 << (2 * (freeClasses - 1))
)

// freeClass is the class of a trace with room for n spans: the smallest
// whose bound (8, 32, 128, 512) holds n; freeClasses when none does.
func freeClass(n int) int {
	c, bound := 0, 8
	for c < freeClasses && n > bound {
		c, bound = c+1, bound*4
	}
	return c
}

// grow gives t, whose span slice is full, the slice of a recycled trace
// of a larger class, its spans copied; the recycled trace takes t's slice
// instead, into t's class. Without one, t's slice grows as append grows
// it.
func (p *pending) grow(t *pendingTrace) {
	for c := freeClass(cap(t.spans)) + 1; c < freeClasses; c++ {
		n := len(p.free[c])
		if n == 0 {
			continue
		}
		u := p.free[c][n-1]
		p.free[c] = p.free[c][:n-1]
		bigger := append(u.spans[:0], t.spans...)
		clear(t.spans) // drop string references
		u.spans = t.spans[:0]
		t.spans = bigger
		p.keep(u)
		return
	}
}

// recycle returns a trace taken from the store for reuse.
func (p *pending) recycle(t *pendingTrace) {
	clear(t.spans) // drop string references
	clear(t.peers)
	t.spans, t.peers = t.spans[:0], t.peers[:0]
	p.keep(t)
}

// keep adds an empty trace to its free class, unless that class is full
// or the trace is too large to keep.
func (p *pending) keep(t *pendingTrace) {
	c := freeClass(cap(t.spans))
	if c < freeClasses && cap(t.peers) <= maxFreeSpans && (len(p.free[c])+1)*(8<<(2*c)) <= freeRoom {
		p.free[c] = append(p.free[c], t)
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
