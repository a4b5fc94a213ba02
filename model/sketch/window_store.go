package sketch

import (
	"errors"

	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/pb/sketchpb"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// windowStore is the store of a window's sketch (NewLatency), built for
// adding to call by call. The library's buffered paginated store appends
// each index to a buffer and sorts it every few hundred calls, a cost
// every span paid two or three times (README, Performance).
// Here a window's first few buckets are held inline, sorted as they come
// (most series carry a handful of calls a window, and then take no
// allocation at all), and past windowFew distinct buckets the counts move
// to a roomy compactStore, where adding is an index and an increment.
// Cross-checked against the library's DenseStore in window_store_test.go.
type windowStore struct {
	few   [windowFew]fewBin // ascending index, while nfew >= 0
	nfew  int8              // buckets held in few; -1 once dense holds them
	dense *compactStore     // roomy; nil until nfew < 0
}

// windowFew is how many distinct buckets a window's store holds inline:
// 128 bytes, as much as the library's buffered store took for a window of
// ten calls (BenchmarkScaleSteady).
const windowFew = 16

type fewBin struct {
	index int32
	count uint32
}

func newWindowStore() *windowStore { return &windowStore{} }

func (s *windowStore) Add(index int)        { s.AddWithCount(index, 1) }
func (s *windowStore) AddBin(bin store.Bin) { s.AddWithCount(bin.Index(), bin.Count()) }

// inc adds one at index: Add, on a window's hot path.
func (s *windowStore) inc(index int) {
	if s.nfew < 0 {
		s.dense.inc(index)
		return
	}
	s.AddWithCount(index, 1)
}

func (s *windowStore) AddWithCount(index int, count float64) {
	if count == 0 {
		return
	}
	if s.nfew >= 0 && s.addFew(index, count) {
		return
	}
	s.spill()
	s.dense.AddWithCount(index, count)
}

// addFew adds to the inline buckets, reporting false when they cannot
// take it (a new bucket beyond windowFew, a count that is not a whole
// uint32, an index beyond int32).
func (s *windowStore) addFew(index int, count float64) bool {
	if !fits(count) || index != int(int32(index)) {
		return false
	}
	i, n := 0, int(s.nfew)
	for i < n && int(s.few[i].index) < index {
		i++
	}
	if i < n && int(s.few[i].index) == index {
		c := float64(s.few[i].count) + count
		if !fits(c) {
			return false
		}
		s.few[i].count = uint32(c)
		return true
	}
	if n == windowFew {
		return false
	}
	copy(s.few[i+1:n+1], s.few[i:n])
	s.few[i] = fewBin{index: int32(index), count: uint32(count)}
	s.nfew++
	return true
}

// spill moves the inline buckets to dense for good.
func (s *windowStore) spill() {
	if s.nfew < 0 {
		return
	}
	s.dense = &compactStore{roomy: true}
	if s.nfew > 0 {
		s.dense.reserve(int(s.few[0].index), int(s.few[s.nfew-1].index))
		for _, b := range s.few[:s.nfew] {
			s.dense.AddWithCount(int(b.index), float64(b.count))
		}
	}
	s.nfew = -1
}

func (s *windowStore) IsEmpty() bool { return s.nfew == 0 || s.nfew < 0 && s.dense.IsEmpty() }

func (s *windowStore) TotalCount() float64 {
	if s.nfew < 0 {
		return s.dense.TotalCount()
	}
	var n float64
	for _, b := range s.few[:s.nfew] {
		n += float64(b.count)
	}
	return n
}

func (s *windowStore) Clear() { *s = windowStore{} }

func (s *windowStore) Copy() store.Store {
	c := *s
	if s.dense != nil {
		c.dense = s.dense.Copy().(*compactStore)
	}
	return &c
}

func (s *windowStore) MinIndex() (int, error) {
	switch {
	case s.nfew < 0:
		return s.dense.MinIndex()
	case s.nfew == 0:
		return 0, errors.New("sketch: MinIndex of an empty store")
	}
	return int(s.few[0].index), nil
}

func (s *windowStore) MaxIndex() (int, error) {
	switch {
	case s.nfew < 0:
		return s.dense.MaxIndex()
	case s.nfew == 0:
		return 0, errors.New("sketch: MaxIndex of an empty store")
	}
	return int(s.few[s.nfew-1].index), nil
}

// KeyAtRank returns the index of the bin holding the observation of the
// given rank (0 the lowest), the highest bin when rank is beyond the count.
func (s *windowStore) KeyAtRank(rank float64) int {
	if s.nfew < 0 {
		return s.dense.KeyAtRank(rank)
	}
	rank = max(rank, 0)
	var n float64
	for _, b := range s.few[:s.nfew] {
		n += float64(b.count)
		if n > rank {
			return int(b.index)
		}
	}
	if s.nfew == 0 {
		return 0
	}
	return int(s.few[s.nfew-1].index)
}

func (s *windowStore) ForEach(f func(index int, count float64) (stop bool)) {
	if s.nfew < 0 {
		s.dense.ForEach(f)
		return
	}
	for _, b := range s.few[:s.nfew] {
		if f(int(b.index), float64(b.count)) {
			return
		}
	}
}

func (s *windowStore) Bins() <-chan store.Bin { return binChan(s) }

func (s *windowStore) MergeWith(o store.Store) {
	if o.IsEmpty() {
		return
	}
	if s.nfew >= 0 {
		lo, _ := o.MinIndex()
		hi, _ := o.MaxIndex()
		if hi-lo+1 <= windowFew { // it may fit inline
			o.ForEach(func(index int, count float64) bool {
				s.AddWithCount(index, count)
				return false
			})
			return
		}
		s.spill()
	}
	s.dense.MergeWith(o) // reserves o's range at once
}

func (s *windowStore) Reweight(w float64) error {
	s.spill()
	return s.dense.Reweight(w)
}

func (s *windowStore) ToProto() *sketchpb.Store             { return denseCopy(s).ToProto() }
func (s *windowStore) EncodeProto(b *sketchpb.StoreBuilder) { denseCopy(s).EncodeProto(b) }

// Encode writes the bins in whichever of the library's three encodings
// is shortest, as its stores choose among theirs (window_store_test.go
// decodes them with the library): index deltas, a bin repeated once per
// call, for a window of a few calls; index deltas and counts; contiguous
// counts from the lowest to the highest bin in use. A window's summary is
// encoded every window for every series of a fleet member
// (fleet/summary.go), so this is written out rather than built through a
// DenseStore copy.
func (s *windowStore) Encode(b *[]byte, t enc.FlagType) {
	if s.IsEmpty() {
		return
	}
	// The length of each encoding, but for its flag.
	var bins, calls, repeated, counted, contiguous, lo int
	whole := s.nfew >= 0 || s.dense.frac == nil
	prev := 0
	s.ForEach(func(index int, count float64) bool {
		n, d := enc.Varfloat64Size(count), enc.Varint64Size(int64(index-prev))
		if bins > 0 {
			contiguous += index - prev - 1 // an empty bin is a zero count, one byte
		} else {
			lo = index
		}
		bins++
		counted += d + n
		contiguous += n
		if whole {
			calls += int(count)
			repeated += d + int(count) - 1 // a repeat is a delta of 0, one byte
		}
		prev = index
		return false
	})
	hi := prev // the last bin's
	counted += enc.Uvarint64Size(uint64(bins))
	repeated += enc.Uvarint64Size(uint64(calls))
	contiguous += enc.Uvarint64Size(uint64(hi-lo+1)) + enc.Varint64Size(int64(lo)) + enc.Varint64Size(1)
	switch {
	case whole && repeated <= counted && repeated <= contiguous:
		enc.EncodeFlag(b, enc.NewFlag(t, enc.BinEncodingIndexDeltas))
		enc.EncodeUvarint64(b, uint64(calls))
		prev := 0
		s.ForEach(func(index int, count float64) bool {
			for range int(count) {
				enc.EncodeVarint64(b, int64(index-prev))
				prev = index
			}
			return false
		})
	case counted < contiguous:
		enc.EncodeFlag(b, enc.NewFlag(t, enc.BinEncodingIndexDeltasAndCounts))
		enc.EncodeUvarint64(b, uint64(bins))
		prev := 0
		s.ForEach(func(index int, count float64) bool {
			enc.EncodeVarint64(b, int64(index-prev))
			enc.EncodeVarfloat64(b, count)
			prev = index
			return false
		})
	default:
		enc.EncodeFlag(b, enc.NewFlag(t, enc.BinEncodingContiguousCounts))
		enc.EncodeUvarint64(b, uint64(hi-lo+1))
		enc.EncodeVarint64(b, int64(lo))
		enc.EncodeVarint64(b, 1)
		next := lo
		s.ForEach(func(index int, count float64) bool {
			for ; next < index; next++ {
				enc.EncodeVarfloat64(b, 0)
			}
			enc.EncodeVarfloat64(b, count)
			next++
			return false
		})
	}
}

func (s *windowStore) DecodeAndMergeWith(b *[]byte, mode enc.SubFlag) error {
	return decodeAndMerge(s, b, mode)
}
