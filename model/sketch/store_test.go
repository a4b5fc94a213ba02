package sketch

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

type bin struct {
	index int
	count float64
}

func binsOf(s store.Store) []bin {
	var out []bin
	s.ForEach(func(i int, c float64) bool { out = append(out, bin{i, c}); return false })
	return out
}

// sameStore fails unless one of our stores and the library's DenseStore
// hold the same counts and answer every question the sketch asks the same
// way; its encoding is the DenseStore's, byte for byte, or (a window's
// store, which writes its own) decodes to the same bins.
func sameStore(t *testing.T, step string, got store.Store, want *store.DenseStore) {
	t.Helper()
	if got.IsEmpty() != want.IsEmpty() || got.TotalCount() != want.TotalCount() {
		t.Fatalf("%s: empty %v total %v, library %v %v", step, got.IsEmpty(), got.TotalCount(), want.IsEmpty(), want.TotalCount())
	}
	if g, w := binsOf(got), binsOf(want); !slices.Equal(g, w) {
		t.Fatalf("%s: bins %v, library %v", step, g, w)
	}
	if want.IsEmpty() {
		return
	}
	glo, _ := got.MinIndex()
	ghi, _ := got.MaxIndex()
	wlo, _ := want.MinIndex()
	whi, _ := want.MaxIndex()
	if glo != wlo || ghi != whi {
		t.Fatalf("%s: range %d..%d, library %d..%d", step, glo, ghi, wlo, whi)
	}
	for _, q := range []float64{-1, 0, 0.3, 0.5, 0.9, 0.99, 1, 2} {
		r := q * want.TotalCount()
		if g, w := got.KeyAtRank(r), want.KeyAtRank(r); g != w {
			t.Fatalf("%s: key at rank %v is %d, library %d", step, r, g, w)
		}
	}
	var gb, wb []byte
	got.Encode(&gb, enc.FlagTypePositiveStore)
	want.Encode(&wb, enc.FlagTypePositiveStore)
	if _, own := got.(*windowStore); !own && !bytes.Equal(gb, wb) {
		t.Fatalf("%s: encodes as %x, library %x", step, gb, wb)
	}
	back := store.NewDenseStore()
	for len(gb) > 0 {
		f, err := enc.DecodeFlag(&gb)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if err := back.DecodeAndMergeWith(&gb, f.SubFlag()); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	if g, w := binsOf(back), binsOf(want); !slices.Equal(g, w) {
		t.Fatalf("%s: decodes to %v, library %v", step, g, w)
	}
}

// mergeEncoded encodes w as the library does and decodes it into each of
// stores; an empty w encodes as nothing, and nothing is decoded.
func mergeEncoded(t *testing.T, w *store.DenseStore, stores ...store.Store) {
	t.Helper()
	var b []byte
	w.Encode(&b, enc.FlagTypePositiveStore)
	if len(b) == 0 {
		return
	}
	for _, s := range stores {
		c := slices.Clone(b)
		f, err := enc.DecodeFlag(&c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DecodeAndMergeWith(&c, f.SubFlag()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompactStoreMatchesLibrary applies the same random operations to a
// compact store and to DDSketch's DenseStore and compares them after each;
// every other run with a roomy store, a window's.
func TestCompactStoreMatchesLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for run := range 50 {
		got, want := &compactStore{roomy: run%2 == 1}, store.NewDenseStore()
		centre := r.IntN(400) - 100
		for step := range 200 {
			index := centre + int(r.NormFloat64()*20)
			switch op := r.IntN(10); {
			case op < 5:
				got.Add(index)
				want.Add(index)
			case op < 7:
				n := float64(1 + r.IntN(5))
				switch r.IntN(40) {
				case 0: // not a whole number: the store turns to float64
					n = 0.25
				case 1: // past uint32: likewise
					n = math.MaxUint32
				}
				got.AddWithCount(index, n)
				want.AddWithCount(index, n)
			case op == 7: // merge a window's store, as Merge does: the library's, or ours
				var w store.Store
				switch r.IntN(3) {
				case 0:
					w = store.NewBufferedPaginatedStore()
				case 1:
					w = &compactStore{roomy: r.IntN(2) == 0}
				default:
					w = newWindowStore()
				}
				for range r.IntN(40) {
					w.Add(centre + int(r.NormFloat64()*30))
				}
				if r.IntN(20) == 0 {
					w.AddWithCount(centre, math.MaxUint32-3) // near the uint32 limit: sums overflow
				}
				got.MergeWith(w)
				want.MergeWith(w)
			case op == 8: // decode what the library encoded
				w := store.NewDenseStore()
				for range r.IntN(10) {
					w.AddWithCount(centre+r.IntN(60)-30, 2)
				}
				mergeEncoded(t, w, got, want)
			default:
				c := got.Copy().(*compactStore)
				roomy := got.roomy
				got.Clear()
				if !got.IsEmpty() || got.len() != 0 {
					t.Fatal("Clear left counts")
				}
				if c.roomy != roomy || got.roomy != roomy {
					t.Fatal("Copy or Clear changed whether the store keeps spare room")
				}
				got = c
			}
			sameStore(t, "run "+string(rune('A'+run%26))+" step "+string(rune('0'+step%10)), got, want)
		}
		if err := got.Reweight(2.5); err != nil {
			t.Fatal(err)
		}
		_ = want.Reweight(2.5)
		sameStore(t, "reweighted", got, want)
		if got.Reweight(0) == nil || got.Reweight(math.NaN()) == nil {
			t.Fatal("reweight by 0 or NaN accepted")
		}
	}
}

// Whole counts are held as uint32 until one is not whole or would pass
// 2^32-1; then as float64, with nothing lost on the way.
func TestCompactStoreCounts(t *testing.T) {
	s := &compactStore{}
	s.AddWithCount(10, math.MaxUint32-1)
	s.Add(12)
	if s.frac != nil {
		t.Fatal("turned to float64 while every count fits")
	}
	s.AddWithCount(10, 2)
	if s.whole != nil || s.count(0) != math.MaxUint32+1 || s.count(2) != 1 {
		t.Fatalf("after passing 2^32-1: whole %v, counts %v %v", s.whole != nil, s.count(0), s.count(2))
	}
	f := &compactStore{}
	f.Add(3)
	f.AddWithCount(3, 0.5)
	if f.frac == nil || f.count(0) != 1.5 || f.TotalCount() != 1.5 {
		t.Fatalf("a half count: %v", binsOf(f))
	}
	// Folding more than fits into the lowest bin turns the store too.
	g := &compactStore{}
	g.AddWithCount(0, math.MaxUint32)
	g.AddWithCount(1, math.MaxUint32)
	g.Add(compactMaxBins + 1)
	if g.frac == nil || g.count(0) != 2*math.MaxUint32 {
		t.Fatalf("folded: %v", binsOf(g))
	}
}

// The compact store holds no spare room: one bin per index in range.
func TestCompactStoreHoldsNoSpareRoom(t *testing.T) {
	s := &compactStore{}
	for i := 100; i < 140; i += 3 {
		s.AddWithCount(i, 7)
	}
	if len(s.whole) != 40 || cap(s.whole) != 40 || s.frac != nil {
		t.Fatalf("whole counts len %d cap %d, want 40", len(s.whole), cap(s.whole))
	}
}

// Beyond compactMaxBins the lowest bins fold into the lowest kept one:
// the count is kept, and every rank above the folded ones answers as the
// library's.
func TestCompactStoreFoldsLowest(t *testing.T) {
	got, want := &compactStore{}, store.NewDenseStore()
	for i := range 1000 {
		got.Add(i)
		want.Add(i)
	}
	if got.len() != compactMaxBins || got.TotalCount() != 1000 {
		t.Fatalf("%d bins holding %v, want %d holding 1000", got.len(), got.TotalCount(), compactMaxBins)
	}
	lo, _ := got.MinIndex()
	if lo != 1000-compactMaxBins || got.count(0) != float64(1000-compactMaxBins+1) {
		t.Fatalf("lowest bin %d holds %v", lo, got.count(0))
	}
	for r := 1000.0 - compactMaxBins; r < 1000; r += 17 {
		if g, w := got.KeyAtRank(r), want.KeyAtRank(r); g != w {
			t.Fatalf("key at rank %v is %d, library %d", r, g, w)
		}
	}
}

// A compact sketch keeps DDSketch's guarantee, merges windows of another
// accuracy within both, and round-trips through the library's encoding.
func TestCompactLatency(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, rel := range []float64{RelativeAccuracy, 0.02, 0.05} {
		kept := NewCompact(rel)
		var all []float64
		for range 200 { // windows of a series, merged as the totals are
			w := NewLatency()
			for range 20 {
				v := math.Exp(math.Log(20) + 0.5*r.NormFloat64())
				w.Add(v)
				all = append(all, v)
			}
			kept.Merge(w)
		}
		slices.Sort(all)
		bound := rel
		if rel != RelativeAccuracy {
			bound = rel + RelativeAccuracy + rel*RelativeAccuracy // re-binned once
		}
		for _, q := range []float64{0.5, 0.9, 0.99} {
			got, want := kept.Quantile(q), exact(all, q)
			if e := math.Abs(got-want) / want; e > bound {
				t.Errorf("%v: p%v = %v, exact %v: error %.4f > %.4f", rel, q*100, got, want, e, bound)
			}
		}
		if kept.Count() != float64(len(all)) || kept.Max() != all[len(all)-1] {
			t.Errorf("%v: count %v max %v, want %d and %v", rel, kept.Count(), kept.Max(), len(all), all[len(all)-1])
		}
		b, _ := kept.MarshalBinary()
		var back Latency
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if back.String() != kept.String() || back.Compact().String() != kept.String() {
			t.Errorf("%v: round trip %s, compacted %s, want %s", rel, back.String(), back.Compact().String(), kept.String())
		}
	}
}

// Compact makes a kept copy of a window's sketch with the same answers.
func TestCompactCopy(t *testing.T) {
	w := NewLatency()
	for i := range 5000 {
		w.Add(float64(i%300) + 0.5)
	}
	c := w.Compact()
	if _, ok := c.d.GetPositiveValueStore().(*compactStore); !ok {
		t.Fatalf("Compact gave a %T", c.d.GetPositiveValueStore())
	}
	if c.String() != w.String() || c.Sum() != w.Sum() {
		t.Fatalf("compact %s, window %s", c, w)
	}
	c.Add(1e6)
	if w.Max() == 1e6 {
		t.Fatal("the copy shares its window's bins")
	}
}

// A sketch with negative values (another implementation's) is refused on
// decoding, not dropped in part.
func TestDecodeRefusesNegatives(t *testing.T) {
	d, err := ddsketch.NewDefaultDDSketchWithExactSummaryStatistics(RelativeAccuracy)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Add(5)
	_ = d.Add(-5)
	var b []byte
	d.Encode(&b, false)
	var l Latency
	if err := l.UnmarshalBinary(b); err == nil {
		t.Fatal("a sketch with a negative value decoded")
	}
}

// One empty store stands for every sketch's negative values; a copy of a
// sketch shares it, and the sketch's encoding is the library's.
func TestNoNegativesShared(t *testing.T) {
	a := NewLatency()
	a.Add(3)
	b := a.Clone()
	if a.d.GetNegativeValueStore() != emptyStore || b.d.GetNegativeValueStore() != emptyStore {
		t.Fatal("a sketch has a negative store of its own")
	}
	enc, _ := a.MarshalBinary()
	d, err := ddsketch.DecodeDDSketchWithExactSummaryStatistics(enc, store.DefaultProvider, nil)
	if err != nil || d.GetCount() != 1 {
		t.Fatalf("library decoding: %v, count %v", err, d.GetCount())
	}
}
