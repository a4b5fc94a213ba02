package graph

import "unsafe"

// The slots of operations and calls are found by their keys' strings.
// Hashing those strings (three per call) was most of what filing a
// joined trace cost beside the sketches. The strings of spans are
// interned by their decoder, so the same few come back again and again:
// a small direct-mapped cache, keyed by where their bytes are, answers
// most lookups by comparing addresses, in front of the aggregator's maps.
// Equal strings may live at several addresses (each decoder interns its
// own, names built while joining are new each time); those lookups just
// miss it.

// strID is a string's identity: where its bytes are, and how many. Two
// strings of one identity are equal, since strings never change; holding
// the address keeps the bytes alive.
type strID struct {
	p *byte
	n int
}

func idOf(s string) strID { return strID{unsafe.StringData(s), len(s)} }

// slotCacheBits sizes each cache: 1,024 entries, a few tens of KiB.
const slotCacheBits = 10

// cacheIndex places a key of up to three strings' identities.
func cacheIndex(a, b, c strID) uint {
	h := uint64(uintptr(unsafe.Pointer(a.p)))*0x9e3779b97f4a7c15 ^
		uint64(uintptr(unsafe.Pointer(b.p)))*0xc2b2ae3d27d4eb4f ^
		uint64(uintptr(unsafe.Pointer(c.p)))*0x165667b19e3779f9
	return uint(h >> (64 - slotCacheBits))
}

type opCacheEntry struct {
	service, op strID
	sl          *slot[OpKey, *OpStats]
}

type edgeCacheEntry struct {
	source, target, op strID
	sl                 *slot[EdgeKey, *EdgeStats]
}

// slotCaches are an aggregator's caches. Only slots kept in its maps are
// cached, and those are never dropped, so an entry never goes stale.
type slotCaches struct {
	ops   [1 << slotCacheBits]opCacheEntry
	edges [1 << slotCacheBits]edgeCacheEntry
}
