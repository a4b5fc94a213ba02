package sketch

import (
	"errors"
	"fmt"
	"math"
	"slices"

	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/pb/sketchpb"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// Two DDSketch stores of our own for kept sketches, for memory (a third,
// for windows, is in window_store.go): a detector tracking 100,000
// edges keeps several long-lived sketches per edge, and the library's
// stores are built for speed of adding. Measured here: a 5% sketch of 550
// log-normal calls, merged window by window as a reference is, took about
// 1.5 KiB in the library's buffered paginated store (its index buffer keeps
// its largest capacity, its pages hold 32 bins each) and under 0.4 KiB in
// compactStore; these two stores alone took BenchmarkScaleSteady from 14.4
// to 11.0 KiB per edge. Both are cross-checked against the library's
// DenseStore in store_test.go. Anything off the hot paths (encoding,
// protobuf) goes through a DenseStore, so the wire formats stay the
// library's.

// noNegatives is the negative-value store of every Latency: durations are
// never negative (Add records them as zero), so one empty, immutable store
// serves every sketch instead of an empty store per sketch.
type noNegatives struct{}

var (
	emptyStore  store.Store = noNegatives{}
	errNegative             = errors.New("sketch: negative durations are not recorded")
)

func (noNegatives) Add(int)                   { panic(errNegative) }
func (noNegatives) AddBin(store.Bin)          { panic(errNegative) }
func (noNegatives) AddWithCount(int, float64) { panic(errNegative) }
func (noNegatives) Bins() <-chan store.Bin {
	ch := make(chan store.Bin)
	close(ch)
	return ch
}
func (noNegatives) ForEach(func(int, float64) bool)    {}
func (noNegatives) Copy() store.Store                  { return emptyStore }
func (noNegatives) Clear()                             {}
func (noNegatives) IsEmpty() bool                      { return true }
func (noNegatives) MaxIndex() (int, error)             { return 0, errors.New("sketch: empty store") }
func (noNegatives) MinIndex() (int, error)             { return 0, errors.New("sketch: empty store") }
func (noNegatives) TotalCount() float64                { return 0 }
func (noNegatives) KeyAtRank(float64) int              { return 0 }
func (noNegatives) ToProto() *sketchpb.Store           { return store.NewDenseStore().ToProto() }
func (noNegatives) EncodeProto(*sketchpb.StoreBuilder) {}
func (noNegatives) Reweight(float64) error             { return nil }
func (noNegatives) Encode(*[]byte, enc.FlagType)       {}

func (noNegatives) MergeWith(o store.Store) {
	if !o.IsEmpty() {
		panic(errNegative)
	}
}

// DecodeAndMergeWith accepts encoded negative bins only when they are
// empty: another implementation's sketch of negative durations is an error,
// not something to drop silently.
func (noNegatives) DecodeAndMergeWith(b *[]byte, mode enc.SubFlag) error {
	d := store.NewDenseStore()
	if err := d.DecodeAndMergeWith(b, mode); err != nil {
		return err
	}
	if !d.IsEmpty() {
		return errNegative
	}
	return nil
}

// compactMaxBins bounds a compactStore: 512 float64 counts, 4 KiB. At 2%
// accuracy that spans a factor of 10^8 (a microsecond to two minutes);
// beyond it, the lowest bins are folded into the lowest kept one, so only
// the fastest calls of a series that also has calls 10^8 times slower lose
// accuracy, as in the library's collapsing-lowest store.
const compactMaxBins = 512

// compactStore holds the counts of bins lo..lo+n-1 in a slice of exactly
// that length: a long-lived sketch's range settles after its first
// windows, so it grows rarely, and holds no spare room. Counts are whole
// numbers in practice (calls), so they are kept as uint32, half the size
// of float64; the first count that is not whole or would pass 2^32-1
// turns the store to float64 counts for good.
//
// A window's sketch uses the same store with spare room (roomy): it is
// added to call by call, so each growth leaves room beyond the new range
// on the side that grew, and its range is wider (windowMaxBins) since
// the window is all it has seen. Adding is then an index and an
// increment, where the library's buffered store sorted its buffer of
// indexes every few hundred calls.
type compactStore struct {
	lo    int
	whole []uint32  // the counts, while they fit
	frac  []float64 // the counts once they do not; nil before
	total float64
	roomy bool
}

// windowMaxBins bounds a roomy store: 2,048 counts, 8 KiB, a factor of
// 10^17 at 1% accuracy, so a window's sketch never folds in practice.
const windowMaxBins = 2048

// windowRoom is the least room a roomy store takes when it grows: a
// window's calls usually spread over dozens of buckets (a factor of two
// is 35 at 1%), and each growth is an allocation and a copy.
const windowRoom = 24

// maxBins is how many bins s may hold.
func (s *compactStore) maxBins() int {
	if s.roomy {
		return windowMaxBins
	}
	return compactMaxBins
}

func (s *compactStore) Add(index int)            { s.AddWithCount(index, 1) }
func (s *compactStore) AddBin(bin store.Bin)     { s.AddWithCount(bin.Index(), bin.Count()) }
func (s *compactStore) IsEmpty() bool            { return s.total == 0 }
func (s *compactStore) TotalCount() float64      { return s.total }
func (s *compactStore) Clear()                   { *s = compactStore{roomy: s.roomy} }
func (s *compactStore) hi() int                  { return s.lo + s.len() - 1 }
func (s *compactStore) ToProto() *sketchpb.Store { return denseCopy(s).ToProto() }

// len is the number of bins held.
func (s *compactStore) len() int {
	if s.frac != nil {
		return len(s.frac)
	}
	return len(s.whole)
}

// count is the count of the i-th bin held (bin lo+i).
func (s *compactStore) count(i int) float64 {
	if s.frac != nil {
		return s.frac[i]
	}
	return float64(s.whole[i])
}

// fits reports whether c can be held as a whole count.
func fits(c float64) bool { return c >= 0 && c <= math.MaxUint32 && c == math.Trunc(c) }

// toFloat turns the counts to float64 for good.
func (s *compactStore) toFloat() {
	if s.frac != nil {
		return
	}
	s.frac = make([]float64, len(s.whole))
	for i, c := range s.whole {
		s.frac[i] = float64(c)
	}
	s.whole = nil
}

func (s *compactStore) AddWithCount(index int, count float64) {
	if count == 0 {
		return
	}
	s.reserve(index, index)
	i := max(index, s.lo) - s.lo // folded below the kept range
	if s.frac == nil {
		if c := float64(s.whole[i]) + count; fits(c) {
			s.whole[i] = uint32(c)
			s.total += count
			return
		}
		s.toFloat()
	}
	s.frac[i] += count
	s.total += count
}

// inc adds one at index: Add, on a window's hot path.
func (s *compactStore) inc(index int) {
	if s.frac == nil && s.len() > 0 && index >= s.lo && index <= s.hi() {
		if c := &s.whole[index-s.lo]; *c < math.MaxUint32 {
			*c++
			s.total++
			return
		}
	}
	s.AddWithCount(index, 1)
}

// extend makes the counts cover lo..hi, or the highest maxBins of that
// range with everything below folded into its lowest bin. Bins outside
// lo..hi must be empty, or below lo.
func (s *compactStore) extend(lo, hi int) {
	if hi-lo+1 > s.maxBins() {
		lo = hi - s.maxBins() + 1
	}
	if s.frac == nil {
		var folded float64
		for i, c := range s.whole {
			if s.lo+i <= lo {
				folded += float64(c)
			}
		}
		if !fits(folded) {
			s.toFloat()
		}
	}
	if s.frac != nil {
		c := make([]float64, hi-lo+1)
		for i, n := range s.frac {
			if n != 0 {
				c[max(s.lo+i, lo)-lo] += n
			}
		}
		s.lo, s.frac = lo, c
		return
	}
	c := make([]uint32, hi-lo+1)
	for i, n := range s.whole {
		if n != 0 {
			c[max(s.lo+i, lo)-lo] += n
		}
	}
	s.lo, s.whole = lo, c
}

// grow is reserve for a roomy store: the side that grew gets room beyond
// lo..hi, half as much as the data's range, and the other keeps what it
// had. Past maxBins the room goes first (the low side's, then the high
// side's), then, as in extend, the lowest data.
func (s *compactStore) grow(lo, hi int) {
	ulo, uhi := lo, hi // the data to hold
	if blo, bhi, ok := s.bounds(); ok {
		ulo, uhi = min(lo, blo), max(hi, bhi)
	}
	nlo, nhi := s.lo, s.hi()
	room := max(windowRoom, (uhi-ulo+1)/2)
	if s.len() == 0 || lo < nlo {
		nlo = lo - room
	}
	if s.len() == 0 || hi > nhi {
		nhi = hi + room
	}
	m := s.maxBins()
	if nhi-nlo+1 > m {
		nlo = max(nlo, ulo)
	}
	if nhi-nlo+1 > m {
		nhi = max(uhi, nlo+m-1)
	}
	s.extend(nlo, nhi)
}

func (s *compactStore) bounds() (lo, hi int, ok bool) {
	if s.total == 0 {
		return 0, 0, false
	}
	lo, hi = s.lo, s.hi()
	for s.count(lo-s.lo) == 0 {
		lo++
	}
	for s.count(hi-s.lo) == 0 {
		hi--
	}
	return lo, hi, true
}

func (s *compactStore) MinIndex() (int, error) {
	lo, _, ok := s.bounds()
	if !ok {
		return 0, errors.New("sketch: MinIndex of an empty store")
	}
	return lo, nil
}

func (s *compactStore) MaxIndex() (int, error) {
	_, hi, ok := s.bounds()
	if !ok {
		return 0, errors.New("sketch: MaxIndex of an empty store")
	}
	return hi, nil
}

// KeyAtRank returns the index of the bin holding the observation of the
// given rank (0 the lowest), the highest bin when rank is beyond the count.
func (s *compactStore) KeyAtRank(rank float64) int {
	rank = max(rank, 0)
	var n float64
	for i := range s.len() {
		n += s.count(i)
		if n > rank {
			return s.lo + i
		}
	}
	_, hi, _ := s.bounds()
	return hi
}

func (s *compactStore) ForEach(f func(index int, count float64) (stop bool)) {
	if s.frac == nil {
		for i, c := range s.whole {
			if c != 0 && f(s.lo+i, float64(c)) {
				return
			}
		}
		return
	}
	for i := range s.len() {
		if c := s.count(i); c != 0 && f(s.lo+i, c) {
			return
		}
	}
}

func (s *compactStore) Bins() <-chan store.Bin { return binChan(s) }

// binChan is Store.Bins for our stores: every bin of s, in order, on a
// channel a goroutine fills.
func binChan(s store.Store) <-chan store.Bin {
	ch := make(chan store.Bin)
	go func() {
		defer close(ch)
		s.ForEach(func(index int, count float64) bool {
			b, _ := store.NewBin(index, count)
			ch <- *b
			return false
		})
	}()
	return ch
}

func (s *compactStore) MergeWith(o store.Store) {
	if o.IsEmpty() {
		return
	}
	lo, _ := o.MinIndex()
	hi, _ := o.MaxIndex()
	s.reserve(lo, hi)
	o.ForEach(func(index int, count float64) bool {
		s.AddWithCount(index, count)
		return false
	})
}

// reserve makes the counts cover lo..hi (as extend does), so a merge
// allocates once rather than once per bin beyond the range.
func (s *compactStore) reserve(lo, hi int) {
	switch {
	case s.roomy:
		if s.len() == 0 || lo < s.lo || hi > s.hi() {
			s.grow(lo, hi)
		}
	case s.len() == 0:
		s.lo = lo
		s.extend(lo, hi)
	case lo < s.lo || hi > s.hi():
		s.extend(min(lo, s.lo), max(hi, s.hi()))
	}
}

func (s *compactStore) Copy() store.Store {
	return &compactStore{lo: s.lo, whole: slices.Clone(s.whole), frac: slices.Clone(s.frac), total: s.total, roomy: s.roomy}
}

func (s *compactStore) Reweight(w float64) error {
	if !(w > 0) || math.IsInf(w, 0) {
		return fmt.Errorf("sketch: cannot reweight by %v", w)
	}
	s.toFloat()
	for i := range s.frac {
		s.frac[i] *= w
	}
	s.total *= w
	return nil
}

// denseCopy copies the counts of one of our stores into the library's
// DenseStore, for its encoders.
func denseCopy(s store.Store) *store.DenseStore {
	d := store.NewDenseStore()
	s.ForEach(func(index int, count float64) bool {
		d.AddWithCount(index, count)
		return false
	})
	return d
}

func (s *compactStore) EncodeProto(b *sketchpb.StoreBuilder) { denseCopy(s).EncodeProto(b) }
func (s *compactStore) Encode(b *[]byte, t enc.FlagType)     { denseCopy(s).Encode(b, t) }

func (s *compactStore) DecodeAndMergeWith(b *[]byte, mode enc.SubFlag) error {
	return decodeAndMerge(s, b, mode)
}

// decodeAndMerge is Store.DecodeAndMergeWith for our stores: the bins
// decoded by the library's DenseStore, then merged into s.
func decodeAndMerge(s store.Store, b *[]byte, mode enc.SubFlag) error {
	d := store.NewDenseStore()
	if err := d.DecodeAndMergeWith(b, mode); err != nil {
		return err
	}
	s.MergeWith(d)
	return nil
}
