package graph

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// pendingOf returns an aggregator holding richTrace traces 0..n-1 pending.
func pendingOf(n int) *Aggregator {
	a := New(Config{}, nil, nil)
	for i := range n {
		a.Add(richTrace(i))
	}
	return a
}

// TestPendingSectionRoundTrip: the pending traces read back are those
// written, field for field, in queue order; every string is written once.
func TestPendingSectionRoundTrip(t *testing.T) {
	a := pendingOf(100)
	var buf bytes.Buffer
	if err := writePending(&buf, a.parts()); err != nil {
		t.Fatal(err)
	}
	got, err := readPending(bufio.NewReader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	q := a.pend.queue
	if len(got) != len(q) || len(got) != 100 {
		t.Fatalf("read %d traces, wrote %d", len(got), len(q))
	}
	spans := 0
	for i, it := range q {
		want := pendingState{At: it.at, ID: it.t.id, LastEnd: it.t.lastEnd, Compact: it.t.spans, Peers: it.t.peers}
		if !reflect.DeepEqual(got[i], want) {
			t.Fatalf("trace %d: read %+v, wrote %+v", i, got[i], want)
		}
		spans += len(it.t.spans)
	}
	perSpan := float64(buf.Len()) / float64(spans)
	t.Logf("%d bytes for %d spans: %.1f a span", buf.Len(), spans, perSpan)
	if perSpan > 40 {
		t.Errorf("%.1f bytes a span: strings are not written once", perSpan)
	}
}

// TestPendingSectionDamaged: a section cut short or with bytes changed is
// refused with an error, never a panic or a huge allocation.
func TestPendingSectionDamaged(t *testing.T) {
	a := pendingOf(5)
	var buf bytes.Buffer
	if err := writePending(&buf, a.parts()); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for n := range len(good) {
		if _, err := readPending(bufio.NewReader(bytes.NewReader(good[:n]))); err == nil {
			t.Fatalf("a section cut at byte %d of %d was read", n, len(good))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 20_000 && time.Now().Before(deadline); i++ {
		b := bytes.Clone(good)
		for range 1 + rng.IntN(3) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		readPending(bufio.NewReader(bytes.NewReader(b))) // must return, either way
	}
}
