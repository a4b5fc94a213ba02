package graph

import (
	"math/rand/v2"
	"testing"

	"github.com/causeway/causeway/span"
)

// The index answers as the map it replaced would: the last span with an id
// wins, and ids not in the trace are not found, whatever the trace's size
// and however many ids repeat.
func TestSpanIndexAgreesWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x spanIndex
	for _, n := range []int{0, 1, 2, 7, 8, 9, 100, 5000} {
		for _, distinct := range []int{1, 3, n + 1} {
			spans := make([]pendingSpan, n)
			want := map[span.ID]int{}
			for i := range spans {
				var id span.ID
				id[0] = byte(rng.IntN(distinct))
				if distinct > 3 {
					id = span.ID{byte(i), byte(i >> 8), byte(rng.Uint32()), 1}
				}
				spans[i].SpanID = id
				want[id] = i
			}
			x.reset(n)
			for i := range spans {
				x.put(spans, i)
			}
			for id, i := range want {
				if got, ok := x.get(spans, id); !ok || got != i {
					t.Fatalf("n=%d distinct=%d: get(%v) = %d, %v; want %d", n, distinct, id, got, ok, i)
				}
			}
			for range 50 {
				id := span.ID{byte(rng.Uint32()), byte(rng.Uint32()), 0xee, 0xff}
				if _, in := want[id]; in {
					continue
				}
				if i, ok := x.get(spans, id); ok {
					t.Fatalf("n=%d distinct=%d: found absent id %v at %d", n, distinct, id, i)
				}
			}
		}
	}
}
