package pipeline

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/internal/wait"
	"github.com/causeway/causeway/span"
)

// fakeSource is a pipeline.Source of batches handed in by the test, on
// one partition, that records commits.
type fakeSource struct {
	out      chan *consume.Batch
	caughtUp atomic.Bool
	parts    []int        // nil: partition 0 alone
	lastErr  atomic.Int64 // unix ns of the last client error; 0: none

	mu        sync.Mutex
	committed []int64 // offsets committed (of the next message to read)
}

func newFakeSource() *fakeSource { return &fakeSource{out: make(chan *consume.Batch)} }

func (s *fakeSource) Batches() <-chan *consume.Batch { return s.out }
func (s *fakeSource) Release(*consume.Batch)         {}
func (s *fakeSource) Partitions(context.Context) ([]int, error) {
	if s.parts == nil {
		return []int{0}, nil
	}
	return s.parts, nil
}

func (s *fakeSource) LastError() time.Time {
	if ns := s.lastErr.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
func (s *fakeSource) CaughtUp(context.Context, map[int]int64) (bool, error) {
	return s.caughtUp.Load(), nil
}

func (s *fakeSource) Commit(_ context.Context, _ int, ps ...consume.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		s.committed = append(s.committed, p.Offset+1)
	}
	return nil
}

func (s *fakeSource) commits() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.committed...)
}

// call is one message: a client call from frontend to cart ending at end
// (unix ns), both spans.
func call(offset int64, trace byte, end int64) *consume.Batch {
	id := span.TraceID{trace}
	return &consume.Batch{Partition: 0, Offset: offset, HighWaterMark: offset + 1, Spans: []span.Span{
		{TraceID: id, SpanID: span.ID{1}, Service: "frontend", Name: "GET /", Kind: span.KindServer, Start: end - 3e6, End: end},
		{TraceID: id, SpanID: span.ID{2}, ParentID: span.ID{1}, Service: "frontend", Name: "GetCart", Kind: span.KindClient, Start: end - 2e6, End: end - 1e6},
		{TraceID: id, SpanID: span.ID{3}, ParentID: span.ID{2}, Service: "cart", Name: "GetCart", Kind: span.KindServer, Start: end - 2e6 + 1e5, End: end - 1e6 - 1e5},
	}}
}

func testGraph(onWindow func(*graph.Window)) *graph.Aggregator {
	return graph.New(graph.Config{Window: 10 * time.Second, TraceIdle: time.Second, Lateness: time.Second, Workers: 1}, onWindow, nil)
}

// startDriver runs d until the returned stop is called; stop waits for
// Run to return and may be called more than once.
func startDriver(d *Driver) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// lateSpans adds up the spans the driver reports too late
// (Options.Applied).
type lateSpans struct{ n atomic.Int64 }

func (l *lateSpans) applied(_ *consume.Batch, n int) { l.n.Add(int64(n)) }

// onPartition moves a message to partition p.
func onPartition(p int, b *consume.Batch) *consume.Batch {
	b.Partition = p
	return b
}

// TestDriverCommitsPublishedWindows: with Publish, a message's offset is
// committed only once every window its spans fell in has been handed on,
// never before; the windows are published before the commit.
func TestDriverCommitsPublishedWindows(t *testing.T) {
	src := newFakeSource()
	src.caughtUp.Store(false) // no idle advance: event time moves by spans alone
	var mu sync.Mutex
	var published []int64 // closedTo of each publish, with the commits seen before it
	var commitsAtPublish []int
	agg := testGraph(nil)
	d := NewDriver(Options{Source: src, Graph: agg, Idle: time.Hour, Tick: 10 * time.Millisecond,
		Publish: func(_ context.Context, closedTo int64) bool {
			mu.Lock()
			defer mu.Unlock()
			published = append(published, closedTo)
			commitsAtPublish = append(commitsAtPublish, len(src.commits()))
			return true
		}})
	stop := startDriver(d)
	const s = int64(time.Second)
	base := int64(1_700_000_000) * s // a window boundary
	src.out <- call(0, 1, base+2*s)  // window [base, base+10s)
	// Window [base+10s, base+20s): the watermark, less trace idle and
	// lateness, stays short of base+10s, so the first window stays open.
	src.out <- call(1, 2, base+11*s)
	if got := src.commits(); len(got) != 0 {
		t.Fatalf("committed %v before any window was published", got)
	}
	src.out <- call(2, 3, base+25*s) // the watermark passes base+10s, plus trace idle and lateness
	wait.For(t, 5*time.Second, 5*time.Millisecond, "offset 1 committed", func() bool {
		c := src.commits()
		return len(c) > 0 && c[len(c)-1] >= 1
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	for i, to := range published {
		if to < base+10*s && commitsAtPublish[i] != 0 {
			t.Errorf("%d commits before the publish of closedTo %d, which holds no window of any message", commitsAtPublish[i], to)
		}
	}
	for _, off := range src.commits() {
		if off > 2 {
			t.Errorf("committed offset %d: message 2's window (ending %d) is not published (closedTo %d)", off, base+30*s, published[len(published)-1])
		}
	}
}

// TestDriverPublishesBacklogTogether: while more batches are waiting, the
// windows closed so far wait for them and go out in one publish, at most
// publishWindows windows to a publish; every window is published in the
// end, and the offsets after them committed.
func TestDriverPublishesBacklogTogether(t *testing.T) {
	const s = int64(time.Second)
	base := int64(1_700_000_000) * s // a window boundary
	for _, c := range []struct {
		messages, publishes int // messages queued (one a window); publishes expected
	}{{20, 1}, {80, 3}} {
		t.Run(strconv.Itoa(c.messages), func(t *testing.T) {
			src := &fakeSource{out: make(chan *consume.Batch, c.messages)}
			for i := range c.messages { // all waiting before the driver starts
				src.out <- call(int64(i), byte(i), base+int64(i)*10*s+2*s)
			}
			var mu sync.Mutex
			var published []int64
			d := NewDriver(Options{Source: src, Graph: testGraph(nil), Idle: time.Hour, Tick: 10 * time.Millisecond,
				PublishHold: time.Hour, // the window bound alone, not the machine's speed, cuts a long backlog
				Publish: func(_ context.Context, closedTo int64) bool {
					mu.Lock()
					defer mu.Unlock()
					published = append(published, closedTo)
					return true
				}})
			stop := startDriver(d)
			defer stop()
			// The last message's window stays open: trace idle and
			// lateness hold the watermark short of its end.
			last := base + int64(c.messages-1)*10*s
			wait.For(t, 5*time.Second, 5*time.Millisecond, "every closed window published", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(published) > 0 && published[len(published)-1] == last
			})
			stop()
			mu.Lock()
			defer mu.Unlock()
			if len(published) != c.publishes {
				t.Errorf("%d publishes (closedTo %v), want %d", len(published), published, c.publishes)
			}
			prev := base
			for _, to := range published {
				if to-prev > publishWindows*10*s {
					t.Errorf("a publish of %d windows, more than %d", (to-prev)/(10*s), publishWindows)
				}
				prev = to
			}
			if got := src.commits(); len(got) == 0 || got[len(got)-1] != int64(c.messages-1) {
				t.Errorf("commits %v: want the last up to offset %d, the first message of the open window", got, c.messages-1)
			}
		})
	}
}

// TestDriverCommitsAppliedWithoutState: without a checkpointer or a
// publisher, each message's offset is committed once it is applied.
func TestDriverCommitsAppliedWithoutState(t *testing.T) {
	src := newFakeSource()
	d := NewDriver(Options{Source: src, Graph: testGraph(nil), Tick: 10 * time.Millisecond})
	stop := startDriver(d)
	for i := range int64(3) {
		src.out <- call(i, byte(i+1), int64(1_700_000_000+i)*int64(time.Second))
	}
	wait.For(t, 5*time.Second, 5*time.Millisecond, "three commits", func() bool { return len(src.commits()) == 3 })
	stop()
	if got := src.commits(); got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("commits %v, want [1 2 3]", got)
	}
}

// TestDriverIdleWaitsForCaughtUp: when the stream goes quiet, event time
// follows the wall clock only once the source says every partition is
// read to its end; while a backlog is still to be read, no window closes.
func TestDriverIdleWaitsForCaughtUp(t *testing.T) {
	src := newFakeSource()
	var closed atomic.Int64
	agg := testGraph(func(*graph.Window) { closed.Add(1) })
	d := NewDriver(Options{Source: src, Graph: agg, Idle: 50 * time.Millisecond, Tick: 10 * time.Millisecond})
	stop := startDriver(d)
	defer stop()
	src.out <- call(0, 1, time.Now().Add(-time.Minute).UnixNano())
	time.Sleep(300 * time.Millisecond) // six times idle, thirty ticks
	if n := closed.Load(); n != 0 {
		t.Fatalf("%d windows closed while the source was not caught up", n)
	}
	src.caughtUp.Store(true)
	wait.For(t, 5*time.Second, 5*time.Millisecond, "the window closed by the wall clock", func() bool { return closed.Load() > 0 })
	stop()
}

// TestDriverOutageHoldsQuietPartitions: a partition that went quiet stops
// holding windows back; when the client then reports an error (a broker
// away), it holds them back again, so the spans written to it during the
// outage, which arrive after another partition's newer ones, are not too
// late. Without the error, the same order of arrival drops them.
func TestDriverOutageHoldsQuietPartitions(t *testing.T) {
	run := func(outage bool) (late int) {
		src := newFakeSource()
		src.parts = []int{0, 1}
		var spans lateSpans
		d := NewDriver(Options{Source: src, Graph: testGraph(nil), Tick: 5 * time.Millisecond, Quiet: 30 * time.Millisecond,
			Applied: spans.applied})
		stop := startDriver(d)
		const s = int64(time.Second)
		base := int64(1_700_000_000) * s
		src.out <- onPartition(0, call(0, 1, base+2*s))
		src.out <- onPartition(1, call(0, 2, base+3*s))
		time.Sleep(200 * time.Millisecond) // partition 1 is quiet long enough to be forgotten
		// The client reports errors while the broker is away, up to the
		// moment the backlog arrives.
		failing := func() {
			if outage {
				src.lastErr.Store(time.Now().UnixNano())
			}
		}
		failing()
		src.out <- onPartition(0, call(1, 3, base+60*s)) // after the outage, newer spans first
		failing()
		src.out <- onPartition(1, call(1, 4, base+20*s)) // then what partition 1 was sent meanwhile
		src.out <- onPartition(0, call(2, 5, base+61*s)) // (a last batch: the one before is applied)
		stop()
		return int(spans.n.Load())
	}
	if late := run(true); late != 0 {
		t.Errorf("after an outage, %d spans of the partition that had been quiet came too late, want 0", late)
	}
	if late := run(false); late == 0 {
		t.Errorf("without an outage, the quiet partition's old spans were not too late: the test shows nothing")
	}
}

// TestDriverRekeyedSources: a fleet's re-key partition interleaves the
// traces of every span partition, and a backlog can bring one span
// partition's minutes before another's. Its spans count under the span
// partition they came from (Batch.EventSource), so event time waits for
// every span partition: the late-read partition's spans are not too late,
// and a watermark record (SourceAt) moves event time for a span partition
// that sends no spans. Counted under the re-key partition alone, 32 of
// the 72 spans were too late.
func TestDriverRekeyedSources(t *testing.T) {
	for _, rekeyed := range []bool{true, false} {
		src := newFakeSource()
		src.parts = []int{0, 1, 2} // the span partitions
		if !rekeyed {
			src.parts = []int{0} // the re-key partition alone
		}
		var windows atomic.Int64
		var late lateSpans
		agg := testGraph(func(*graph.Window) { windows.Add(1) })
		d := NewDriver(Options{Source: src, Graph: agg, Tick: 10 * time.Millisecond, Applied: late.applied})
		stop := startDriver(d)
		t0 := int64(1_700_000_000) * int64(time.Second)
		off := int64(0)
		send := func(source int, trace byte, end, at int64) {
			b := call(off, trace, end)
			off++
			if rekeyed {
				b.Rekeyed, b.Source, b.SourceAt = true, source, at
			}
			src.out <- b
		}
		// Span partition 0's two minutes are re-keyed first, then span
		// partition 1's; partition 2 has no traffic, only its watermark.
		for i := range int64(12) {
			send(0, byte(i+1), t0+i*10*int64(time.Second), 0)
		}
		for i := range int64(12) {
			send(1, byte(i+100), t0+i*10*int64(time.Second), 0)
		}
		b := &consume.Batch{Partition: 0, Offset: off, HighWaterMark: off + 1}
		if rekeyed {
			b.Rekeyed, b.Source, b.SourceAt = true, 2, t0+2*int64(time.Minute)
		}
		src.out <- b
		wait.For(t, 5*time.Second, 5*time.Millisecond, "every message applied", func() bool {
			c := src.commits()
			return len(c) > 0 && c[len(c)-1] == off+1
		})
		stop()
		switch {
		case rekeyed && (late.n.Load() != 0 || windows.Load() == 0):
			t.Errorf("re-keyed: %d spans too late, %d windows closed; want none late and windows closed by the watermarks", late.n.Load(), windows.Load())
		case !rekeyed && late.n.Load() == 0:
			t.Error("counted under the re-key partition, nothing was too late: the test shows nothing")
		}
	}
}

// TestDriverHoldsPartitionsJustAfterAnOutage: right after an outage every
// partition is read to its end before producers have sent what they
// buffered; a partition silent since before the outage must not stop
// holding windows back then, or its buffered spans, arriving after
// another partition's newer ones, come too late.
func TestDriverHoldsPartitionsJustAfterAnOutage(t *testing.T) {
	src := newFakeSource()
	src.parts = []int{0, 1}
	var late lateSpans
	d := NewDriver(Options{Source: src, Graph: testGraph(nil), Tick: 5 * time.Millisecond, Quiet: time.Second,
		Applied: late.applied})
	stop := startDriver(d)
	const s = int64(time.Second)
	base := int64(1_700_000_000) * s
	src.out <- onPartition(0, call(0, 1, base+2*s))
	src.out <- onPartition(1, call(0, 2, base+3*s))
	// The broker goes away for longer than quiet: the client reports
	// errors all along.
	for end := time.Now().Add(1200 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		src.lastErr.Store(time.Now().UnixNano())
	}
	// It is back; nothing new is written yet, so every partition is read
	// to its end. Ticks pass.
	src.caughtUp.Store(true)
	time.Sleep(50 * time.Millisecond)
	src.out <- onPartition(0, call(1, 3, base+60*s)) // the producers' buffers: newer spans first
	src.out <- onPartition(1, call(1, 4, base+20*s)) // then partition 1's
	src.out <- onPartition(0, call(2, 5, base+61*s))
	stop()
	if n := late.n.Load(); n != 0 {
		t.Errorf("%d spans of the partition silent since before the outage came too late, want 0", n)
	}
}
