package graph

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/causeway/causeway/span"
)

// spanIndex finds a span of one trace by its id: an open-addressing table
// of positions, rebuilt for every trace the joiner pairs.
//
// It replaces a map[span.ID]int that was cleared and refilled per trace:
// clearing, hashing and probing the map was half of the joiner's time,
// which is a sixth of the pipeline's (BenchmarkDecodeAggregate, make
// profile). Positions are keyed through a seeded mix of the id, so ids
// chosen to collide cannot make a trace's pairing quadratic.
type spanIndex struct {
	slots []int32 // position+1 of the span whose id hashes here; 0: empty
	shift uint
	seed  uint64
}

// reset empties the index for a trace of n spans.
func (x *spanIndex) reset(n int) {
	if x.seed == 0 {
		x.seed = rand.Uint64() | 1
	}
	bits := uint(4)
	for 1<<bits < 2*n {
		bits++
	}
	size := 1 << bits
	if cap(x.slots) < size {
		x.slots = make([]int32, size)
	} else {
		x.slots = x.slots[:size]
		clear(x.slots)
	}
	x.shift = 64 - bits
}

// slot returns where the probe for id starts: the top bits of a seeded
// fmix64 (MurmurHash3's finaliser) of the id.
func (x *spanIndex) slot(id span.ID) uint64 {
	h := binary.LittleEndian.Uint64(id[:]) ^ x.seed
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h >> x.shift
}

// put records that spans[i] has its id; a later span with the same id
// replaces an earlier one, as in a map.
func (x *spanIndex) put(spans []pendingSpan, i int) {
	id := spans[i].SpanID
	mask := uint64(len(x.slots) - 1)
	for s := x.slot(id); ; s = (s + 1) & mask {
		p := x.slots[s]
		if p == 0 || spans[p-1].SpanID == id {
			x.slots[s] = int32(i + 1)
			return
		}
	}
}

// get returns the position of the span with id, and whether there is one.
func (x *spanIndex) get(spans []pendingSpan, id span.ID) (int, bool) {
	mask := uint64(len(x.slots) - 1)
	for s := x.slot(id); ; s = (s + 1) & mask {
		p := x.slots[s]
		if p == 0 {
			return 0, false
		}
		if spans[p-1].SpanID == id {
			return int(p - 1), true
		}
	}
}
