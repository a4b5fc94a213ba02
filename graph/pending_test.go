package graph

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/causeway/causeway/span"
)

// TestExpiryQueueOrder: pops come out in order of time, whatever the
// order of pushes, interleaved with pops.
func TestExpiryQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q expiryQueue
	var want, got []int64
	for round := range 2000 {
		at := r.Int64N(1000)
		q.push(expiryItem{at: at})
		want = append(want, at)
		if round%3 == 0 {
			slices.Sort(want)
			if it := q.pop(); it.at != want[0] {
				t.Fatalf("round %d: popped %d, want the least %d", round, it.at, want[0])
			}
			want = want[1:]
		}
	}
	for len(q) > 0 {
		got = append(got, q.pop().at)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("drained %d items out of order", len(got))
	}
}

// TestPendingBytes: what the pending store counts (pendingTrace.bytes,
// which the byte cap and the memory budget go by) covers what it holds of
// the heap, its trace entries, index, queue and spare room included,
// and is not far above it, for traces of one span to forty (a third
// naming a peer, the names interned as the decoder does).
func TestPendingBytes(t *testing.T) {
	for _, per := range []int{1, 2, 5, 12, 40} {
		traces := 240_000 / per
		tmpl := make([]span.Span, per)
		for j := range tmpl {
			tmpl[j] = span.Span{Service: "checkoutservice", Name: "hipstershop.CheckoutService/PlaceOrder", Kind: span.KindServer,
				Start: int64(j), End: int64(j) + 1000, GRPCStatus: -1}
			if j%3 == 2 || per == 1 {
				tmpl[j].Kind, tmpl[j].ServerAddress, tmpl[j].DBSystem = span.KindClient, "redis-cart", "redis"
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p := newPending()
		for i := range traces {
			for j := range tmpl {
				s := tmpl[j]
				binary.LittleEndian.PutUint64(s.TraceID[:], uint64(i)+1)
				binary.LittleEndian.PutUint64(s.SpanID[:], uint64(i*per+j)+1)
				p.add(&s)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		n := float64(traces * per)
		t.Logf("traces of %2d spans: %3.0f bytes per span held, %3.0f counted", per, float64(held)/n, float64(p.nBytes)/n)
		if p.nBytes < held || float64(p.nBytes) > 1.5*float64(held) {
			t.Errorf("traces of %d spans: counted %d bytes for %d held; the count must cover the heap and stay near it", per, p.nBytes, held)
		}
		runtime.KeepAlive(p)
	}
}

// TestSplitPending: the pending caps are divided between the aggregators
// sharing them; unset caps stay unset (each aggregator then takes the
// default), and one aggregator keeps them whole.
func TestSplitPending(t *testing.T) {
	c := Config{MaxPendingSpans: 1000, MaxPendingBytes: 1 << 20}
	if got := c.SplitPending(4); got.MaxPendingSpans != 250 || got.MaxPendingBytes != 1<<18 {
		t.Errorf("split in 4: %d spans, %d bytes", got.MaxPendingSpans, got.MaxPendingBytes)
	}
	if got := c.SplitPending(1); got != c {
		t.Errorf("one aggregator: %+v, want %+v", got, c)
	}
	if got := (Config{}).SplitPending(6); got.MaxPendingSpans != 0 || got.MaxPendingBytes != 0 {
		t.Errorf("unset caps became %d spans, %d bytes", got.MaxPendingSpans, got.MaxPendingBytes)
	}
}

// A trace that fills its room trades its slice for a recycled one of a
// larger class, its spans intact, and the recycled trace keeps the
// smaller slice for a trace of its size; each class keeps at most
// freeRoom spans of room.
func TestPendingGrowTradesSlices(t *testing.T) {
	p := newPending()
	add := func(id uint64, n int) *pendingTrace {
		var tr *pendingTrace
		for j := range n {
			s := span.Span{Service: "cart", Name: "GetCart", Kind: span.KindServer, Start: int64(j), End: int64(j) + 10}
			binary.LittleEndian.PutUint64(s.TraceID[:], id)
			binary.LittleEndian.PutUint64(s.SpanID[:], id<<16|uint64(j)+1)
			p.add(&s)
			tr = p.traces[s.TraceID]
		}
		return tr
	}
	take := func(tr *pendingTrace) {
		delete(p.traces, tr.id)
		p.nBytes -= tr.bytes()
		p.recycle(tr)
	}
	big := add(1, 100)
	c := freeClass(cap(big.spans))
	bigRoom := &big.spans[:1][0]
	take(big)
	if c == 0 || c >= freeClasses || len(p.free[c]) != 1 {
		t.Fatalf("recycled a trace with room for %d: free classes hold %d %d %d %d", cap(big.spans), len(p.free[0]), len(p.free[1]), len(p.free[2]), len(p.free[3]))
	}
	tr := add(2, 9) // a fresh trace's room (4) fills at 4 spans, then at 8
	if &tr.spans[0] != bigRoom || len(tr.spans) != 9 {
		t.Fatalf("a growing trace did not take the recycled room: %d spans, room %d", len(tr.spans), cap(tr.spans))
	}
	for j, s := range tr.spans {
		if s.Start != int64(j) {
			t.Fatalf("span %d starts at %d after the trade", j, s.Start)
		}
	}
	if len(p.free[c]) != 0 || len(p.free[0]) != 1 || cap(p.free[0][0].spans) != 4 {
		t.Fatalf("after the trade the free classes hold %d %d %d %d", len(p.free[0]), len(p.free[1]), len(p.free[2]), len(p.free[3]))
	}
	var counted int64
	for _, tr := range p.traces {
		counted += tr.bytes()
	}
	if counted != p.nBytes {
		t.Fatalf("counted %d bytes for traces holding %d", p.nBytes, counted)
	}
	var many []*pendingTrace
	for i := range freeRoom/maxFreeSpans + 10 {
		many = append(many, add(uint64(100+i), 300)) // the largest class
	}
	for _, tr := range many {
		take(tr)
	}
	if got := len(p.free[freeClasses-1]) * maxFreeSpans; got > freeRoom || got < freeRoom/2 {
		t.Fatalf("the largest class keeps room for %d spans; at most %d", got, freeRoom)
	}
}
