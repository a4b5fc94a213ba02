package sketch

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// indexTable computes a logarithmic mapping's Index without a logarithm,
// bucket for bucket the same: every span adds two or three durations to
// window sketches, a logarithm each (README, Performance). The library's
// interpolated mappings avoid it too, but they are other mappings:
// sketches of two versions of Causeway (a snapshot, a fleet mid-upgrade)
// would no longer merge bucket for bucket.
//
// A positive float64's bits, shifted right by 52-subBits, number its
// octave and the first subBits bits of its mantissa: a row per 1/2^subBits
// of an octave. A row is narrower than a bucket (0.5% against 2% at 1%
// accuracy), so at most one bucket boundary falls in it: the row holds
// the index of its first value and that boundary, found at construction
// by bisection over the mapping's own Index.
type indexTable struct {
	first int // bits>>rowShift of the first row
	rows  []indexRow
}

type indexRow struct {
	bound float64 // the lowest value of the row in the next bucket; +Inf when none is
	base  int32   // the bucket of the row's first value
}

const (
	subBits  = 7
	rowShift = 52 - subBits
)

// indexRange is the range of values (in the unit sketches are fed:
// milliseconds) the table covers: a nanosecond to a day. Values outside
// it are indexed by the mapping.
var indexRange = [2]float64{1e-6, 1e8}

// newIndexTable returns the table of m over indexRange, or nil when m's
// buckets are narrower than a row.
func newIndexTable(m mapping.IndexMapping) *indexTable {
	lo := math.Float64bits(indexRange[0]) >> rowShift
	hi := math.Float64bits(indexRange[1])>>rowShift + 1
	t := &indexTable{first: int(lo), rows: make([]indexRow, hi-lo)}
	for r := range t.rows {
		start := (lo + uint64(r)) << rowShift
		last := start + 1<<rowShift - 1 // the row's last value's bits
		base, top := m.Index(math.Float64frombits(start)), m.Index(math.Float64frombits(last))
		row := indexRow{bound: math.Inf(1), base: int32(base)}
		switch {
		case top == base:
		case top == base+1:
			// The lowest value in bucket base+1: Index is monotone in the
			// value, and positive floats are ordered as their bits.
			a, b := start, last // Index(a) == base, Index(b) == base+1
			for b-a > 1 {
				mid := a + (b-a)/2
				if m.Index(math.Float64frombits(mid)) > base {
					b = mid
				} else {
					a = mid
				}
			}
			row.bound = math.Float64frombits(b)
		default:
			return nil
		}
		t.rows[r] = row
	}
	return t
}

// index returns m.Index(v) for a v in the table's range; ok is false
// outside it (zero, negative, NaN, beyond indexRange).
func (t *indexTable) index(v float64) (i int, ok bool) {
	r := int(math.Float64bits(v)>>rowShift) - t.first
	if uint(r) >= uint(len(t.rows)) {
		return 0, false
	}
	row := &t.rows[r]
	i = int(row.base)
	if v >= row.bound {
		i++
	}
	return i, true
}

// valueTable holds a shared mapping's Value (a bucket's representative
// value, an exponential) for the buckets of indexRange: quantiles and
// exceedance counts read it for every series in every window.
type valueTable struct {
	m  mapping.IndexMapping
	lo int
	v  []float64
}

// valueTables are the shared mappings' tables (mappingFor), replaced as
// a whole when one is added, so that reading them takes no lock.
var (
	valueTables   atomic.Pointer[[]*valueTable]
	valueTablesMu sync.Mutex
)

// addValueTable computes m's table and adds it to valueTables.
func addValueTable(m mapping.IndexMapping) {
	lo, hi := m.Index(indexRange[0]), m.Index(indexRange[1])
	t := &valueTable{m: m, lo: lo, v: make([]float64, hi-lo+1)}
	for i := range t.v {
		t.v[i] = m.Value(lo + i)
	}
	valueTablesMu.Lock()
	defer valueTablesMu.Unlock()
	var ts []*valueTable
	if old := valueTables.Load(); old != nil {
		ts = append(ts, *old...)
	}
	ts = append(ts, t)
	valueTables.Store(&ts)
}

// value returns m.Value(i), from m's table when it has one.
func value(m mapping.IndexMapping, i int) float64 {
	if ts := valueTables.Load(); ts != nil {
		for _, t := range *ts {
			if t.m == m {
				if j := i - t.lo; uint(j) < uint(len(t.v)) {
					return t.v[j]
				}
				break
			}
		}
	}
	return m.Value(i)
}
