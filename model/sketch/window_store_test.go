package sketch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch/store"
)

// TestWindowStoreMatchesLibrary applies the same random operations to a
// window's store and to DDSketch's DenseStore and compares them after
// each: runs that stay within the inline buckets, runs that spill, counts
// that are not whole or pass 2^32-1, merges, decodes, copies.
func TestWindowStoreMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for run := range 60 {
		got, want := newWindowStore(), store.NewDenseStore()
		centre := r.IntN(400) - 100
		spread := []float64{0.5, 2, 20}[run%3] // a few buckets, some, many
		for step := range 150 {
			index := centre + int(math.Round(r.NormFloat64()*spread))
			switch op := r.IntN(12); {
			case op < 6:
				got.inc(index)
				want.Add(index)
			case op < 8:
				n := float64(1 + r.IntN(5))
				switch r.IntN(40) {
				case 0:
					n = 0.25
				case 1:
					n = math.MaxUint32
				}
				got.AddWithCount(index, n)
				want.AddWithCount(index, n)
			case op == 8:
				w := store.NewBufferedPaginatedStore()
				for range r.IntN(6) {
					w.Add(centre + int(r.NormFloat64()*spread))
				}
				got.MergeWith(w)
				want.MergeWith(w)
			case op == 9:
				w := store.NewDenseStore()
				for range r.IntN(4) {
					w.AddWithCount(centre+int(r.NormFloat64()*spread), 2)
				}
				mergeEncoded(t, w, got, want)
			case op == 10:
				c := got.Copy().(*windowStore)
				got.inc(index) // the copy must not see it
				want.Add(index)
				if c.TotalCount() != got.TotalCount()-1 {
					t.Fatalf("run %d step %d: the copy shares counts with its original", run, step)
				}
				got.Clear()
				if !got.IsEmpty() || got.nfew != 0 {
					t.Fatal("Clear left counts")
				}
				c.inc(index)
				got = c
			default:
				got.AddWithCount(index, 0) // nothing
			}
			sameStore(t, fmt.Sprintf("run %d step %d (inline %v)", run, step, got.nfew >= 0), got, want)
		}
		if err := got.Reweight(2.5); err != nil {
			t.Fatal(err)
		}
		_ = want.Reweight(2.5)
		sameStore(t, "reweighted", got, want)
	}
}

// A window's store holds its first windowFew buckets without allocating,
// and spills the next one to the dense counts.
func TestWindowStoreInline(t *testing.T) {
	s := newWindowStore()
	if n := testing.AllocsPerRun(100, func() {
		s.Clear()
		for i := range windowFew {
			s.inc(100 - 3*i)
			s.inc(100 - 3*i)
		}
	}); n != 0 {
		t.Fatalf("%v allocations for %d buckets", n, windowFew)
	}
	if s.nfew != windowFew || s.dense != nil {
		t.Fatalf("inline %d, dense %v after %d buckets", s.nfew, s.dense, windowFew)
	}
	s.inc(7)
	if s.nfew >= 0 || s.dense.TotalCount() != 2*windowFew+1 {
		t.Fatalf("inline %d, dense total %v after one more bucket", s.nfew, s.dense.TotalCount())
	}
}
