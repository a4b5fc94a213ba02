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

// TestPendingSpanBytes: a pending span costs the heap at most
// PendingSpanBytes, its share of its trace's entry, index and queue item
// included, for traces of a dozen spans of which a third name a peer (the
// names interned, as the decoder does). The memory budget divides by it.
func TestPendingSpanBytes(t *testing.T) {
	const traces, per = 20_000, 12
	tmpl := make([]span.Span, per)
	for j := range tmpl {
		tmpl[j] = span.Span{Service: "checkoutservice", Name: "hipstershop.CheckoutService/PlaceOrder", Kind: span.KindServer,
			Start: int64(j), End: int64(j) + 1000, GRPCStatus: -1}
		if j%3 == 2 {
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
	got := float64(after.HeapAlloc-before.HeapAlloc) / (traces * per)
	t.Logf("%.0f bytes per pending span", got)
	if got > PendingSpanBytes {
		t.Errorf("a pending span costs %.0f bytes, more than the %d the memory budget counts", got, PendingSpanBytes)
	}
	runtime.KeepAlive(p)
}
