package graph

import (
	"math/rand/v2"
	"slices"
	"testing"
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
