package graph

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

// richTrace is a trace whose spans use what a pending span keeps: a call
// between services, a failed one, a database seen from a client span, and
// a hop through a queue.
func richTrace(i int) []span.Span {
	s := call(i, "cart", "Get", time.Duration(i)*100*time.Millisecond)
	tid, t0 := s[0].TraceID, s[0].Start
	s = append(s,
		span.Span{TraceID: tid, SpanID: span.ID{3}, ParentID: span.ID{2}, Service: "cart", Name: "HGET", Kind: span.KindClient,
			Start: t0 + 2e6, End: t0 + 3e6, DBSystem: "Redis", ServerAddress: "redis-cart", Status: span.StatusError},
		span.Span{TraceID: tid, SpanID: span.ID{4}, ParentID: span.ID{1}, Service: "frontend", Name: "publish", Kind: span.KindProducer,
			Start: t0 + 4e6, End: t0 + 5e6, MessagingSystem: "kafka", MessagingDest: "orders"},
		span.Span{TraceID: tid, SpanID: span.ID{5}, ParentID: span.ID{4}, Service: "mailer", Name: "process", Kind: span.KindConsumer,
			Start: t0 + 7e6, End: t0 + 8e6, HTTPStatus: 503},
		// A server span's own address names no peer.
		span.Span{TraceID: tid, SpanID: span.ID{6}, ParentID: span.ID{5}, Service: "smtp", Name: "send", Kind: span.KindServer,
			Start: t0 + 7e6, End: t0 + 8e6, ServerAddress: "smtp.internal"},
	)
	return s
}

// edgeCounts sums requests, errors and gap samples per edge over windows.
func edgeCounts(ws []*Window) map[string][3]int64 {
	out := map[string][3]int64{}
	for _, w := range ws {
		for k, st := range w.Edges {
			c := out[k.String()]
			out[k.String()] = [3]int64{c[0] + st.Requests, c[1] + st.Errors, c[2] + st.GapCount}
		}
	}
	return out
}

// TestPendingTracesSurviveCheckpoint: traces pending at a checkpoint are
// joined after a restart as they would have been without one, whether the
// checkpoint holds them in its own section (version 2) or as whole spans
// in the gob stream (version 1).
func TestPendingTracesSurviveCheckpoint(t *testing.T) {
	var all []span.Span
	byTrace := map[span.TraceID][]span.Span{}
	for i := range 50 {
		tr := richTrace(i)
		all = append(all, tr...)
		byTrace[tr[0].TraceID] = tr
	}
	run := func(prepare func(*Aggregator)) map[string][3]int64 {
		var closed []*Window
		a := New(Config{}, func(w *Window) { closed = append(closed, w) }, nil)
		prepare(a)
		a.Flush()
		return edgeCounts(closed)
	}
	want := run(func(a *Aggregator) { a.Add(all) })
	if len(want) != 5 || want["frontend->orders:publish"][0] != 50 || want["cart->redis-cart:HGET"][1] != 50 || want["orders->mailer:process"][1] != 50 {
		t.Fatalf("the uninterrupted run joined %v; the trace does not exercise what it should", want)
	}

	var saved bytes.Buffer
	a := New(Config{}, nil, nil)
	a.Add(all)
	if err := a.SaveState(&saved); err != nil {
		t.Fatal(err)
	}
	var st aggregatorState
	br := bufio.NewReader(bytes.NewReader(saved.Bytes()))
	if err := gob.NewDecoder(br).Decode(&st); err != nil {
		t.Fatal(err)
	}
	var err error
	if st.Pending, err = readPending(br); err != nil {
		t.Fatal(err)
	}
	if len(st.Pending) != 50 || st.Version != 2 {
		t.Fatalf("version %d with %d traces pending in the checkpoint, want version 2 with 50", st.Version, len(st.Pending))
	}
	// Version 1: the pending traces in the gob stream, as whole spans.
	st.Version = 1
	for i := range st.Pending {
		p := &st.Pending[i]
		p.Compact, p.Peers, p.Spans = nil, nil, byTrace[p.ID]
	}
	var earlier bytes.Buffer
	if err := gob.NewEncoder(&earlier).Encode(&st); err != nil {
		t.Fatal(err)
	}

	for name, buf := range map[string]*bytes.Buffer{"this build": &saved, "earlier build": &earlier} {
		got := run(func(a *Aggregator) {
			if err := a.LoadState(buf); err != nil {
				t.Fatal(err)
			}
		})
		if !maps.Equal(got, want) {
			t.Errorf("%s: after the restart %v, want %v", name, fmt.Sprint(got), fmt.Sprint(want))
		}
	}
}
