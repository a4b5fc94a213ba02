package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/graph"
)

// localWindows are the windows this member's partition workers published,
// kept until the member reads their summaries back from the summaries
// topic, so that it merges its own partitions' windows as they are rather
// than decode what it has just encoded. Every member still merges every
// partition's windows in topic order, and a window it cannot find here
// (published by an earlier process, or past the bound) is decoded as any
// other: the merge is the same either way, as a window travels through a
// summary whole (TestSummaryRoundTrip, TestLocalWindowsMergeAsDecoded).
type localWindows struct {
	mu sync.Mutex
	// id is this process's: a member restarted under the same name must
	// not take its predecessor's summaries for its own.
	id   string
	next uint64
	m    map[uint64]*localWindow
	// owned are the shards this process merges (a sharded merge): a
	// partition worker keeps its window's part for one of them until its
	// shard worker reads it back.
	owned map[int]bool
}

// localWindow is one published window: its partition, and how many of
// its summary parts were written and have been read back.
type localWindow struct {
	w           *graph.Window
	partition   int
	shard       int // the shard whose worker reads it, or -1: this member's merger of the whole
	parts, read int
}

// maxLocalWindows bounds the windows kept: a member reading the summaries
// topic far behind its own workers decodes the rest.
const maxLocalWindows = 4096

// headerLocal marks a summary part with the process that published it and
// the window's number there.
const headerLocal = "causeway.local"

func newLocalWindows() *localWindows {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &localWindows{id: hex.EncodeToString(b[:]), m: map[uint64]*localWindow{}, owned: map[int]bool{}}
}

// put keeps w, published as parts summary parts of partition p for
// shard s to merge (-1: no shard, this member's merger of the whole), and
// returns the header its parts carry; false when it keeps no more, or
// when this process does not merge s.
func (l *localWindows) put(w *graph.Window, p, s, parts int) (kafka.Header, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= maxLocalWindows || (s >= 0 && !l.owned[s]) {
		return kafka.Header{}, false
	}
	l.next++
	l.m[l.next] = &localWindow{w: w, partition: p, shard: s, parts: parts}
	return kafka.Header{Key: headerLocal, Value: []byte(l.id + ":" + strconv.FormatUint(l.next, 10))}, true
}

// own notes that this process merges shard s from now on.
func (l *localWindows) own(s int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owned[s] = true
}

// release notes that this process stopped merging shard s, and forgets
// the parts kept for it: whoever merges s next decodes them.
func (l *localWindows) release(s int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.owned, s)
	for k, lw := range l.m {
		if lw.shard == s {
			delete(l.m, k)
		}
	}
}

// take returns the window kept for a summary part with these headers:
// the window with the first of its parts, nil with the others (found
// true either way); found is false for a part this process did not keep.
// The window is forgotten once all its parts are read.
func (l *localWindows) take(headers []kafka.Header) (w *graph.Window, partition int, found bool) {
	for _, h := range headers {
		if h.Key != headerLocal {
			continue
		}
		id, seq, ok := strings.Cut(string(h.Value), ":")
		if !ok || id != l.id {
			return nil, 0, false
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			return nil, 0, false
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		lw := l.m[n]
		if lw == nil {
			return nil, 0, false
		}
		lw.read++
		if lw.read >= lw.parts {
			delete(l.m, n)
		}
		if lw.read == 1 {
			return lw.w, lw.partition, true
		}
		return nil, lw.partition, true
	}
	return nil, 0, false
}
