package fleet

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/internal/wait"
)

// TestLateSummaryCounted: a span partition nothing is heard from for
// max_window_wait is left out of the merged windows, and what it
// publishes for them afterwards is dropped and counted in
// causeway_fleet_late_summaries_total, not merged: the calls a member
// loses that way show in a counter. A member reads the summaries topic of
// an in-process broker, where the test writes them as partition workers
// would; with a sharded merge the member merges its shards and reads them
// back merged.
func TestLateSummaryCounted(t *testing.T) {
	for _, mode := range []string{MergeEveryMember, MergeSharded} {
		t.Run(mode, func(t *testing.T) { testLateSummaryCounted(t, mode) })
	}
}

func testLateSummaryCounted(t *testing.T, mode string) {
	c := inProcessBroker(t)
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var merged []*graph.Window
	n, err := New(Config{Enabled: true, WindowsTopic: "windows", LeaderTopic: "leader", Member: "m", MaxWindowWait: time.Second, SessionTimeout: time.Second, Merge: mode},
		Options{Kafka: consume.Config{Brokers: c.ListenAddrs(), Topic: "spans", GroupID: "g"}, Registerer: reg,
			Log: slog.New(slog.DiscardHandler), OnWindow: func(w *graph.Window) {
				mu.Lock()
				merged = append(merged, w)
				mu.Unlock()
			}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait.For(t, 20*time.Second, 20*time.Millisecond, "the member caught up", func() bool { return n.Ready() == nil })

	out := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: "windows", Balancer: &shardBalancer{}, BatchTimeout: time.Millisecond}
	defer out.Close()
	publish := func(p int, w *graph.Window, closedTo time.Time) {
		t.Helper()
		s := summary{Source: "spans", Partition: p, Member: "other"}
		var msgs []kafka.Message
		switch {
		case mode == MergeEveryMember:
			if w == nil {
				s.ClosedTo = closedTo.UnixNano()
			}
			msgs = append(msgs, kafka.Message{Key: s.key(), Value: encoded(t, s, w)})
		case w == nil: // a watermark goes to every shard
			s.ClosedTo = closedTo.UnixNano()
			for sh := range n.shards {
				msgs = append(msgs, kafka.Message{Key: s.key(), Value: encoded(t, s, nil), Headers: []kafka.Header{shardHeader(sh)}})
			}
		default:
			shards, err := shardWindow(w, n.shards, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for sh, parts := range shards {
				for _, part := range parts {
					s.Window = part
					b, err := encodeSummary(&s)
					if err != nil {
						t.Fatal(err)
					}
					msgs = append(msgs, kafka.Message{Key: s.key(), Value: b, Headers: []kafka.Header{shardHeader(sh)}})
				}
			}
		}
		if err := out.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	k := graph.EdgeKey{Source: "frontend", Target: "cart", Operation: "GetCart"}
	window := func(calls int) *graph.Window { return withCalls(graph.NewWindow(t0, t0.Add(10*time.Second)), k, calls) }
	late := func() float64 { return testutil.ToFloat64(n.m.lateParts) }

	// Partition 0 publishes its window and closes it; partition 1 says
	// nothing. Once it has been silent for max_window_wait, the next
	// summary lets the window through without it.
	publish(0, window(7), time.Time{})
	publish(0, nil, t0.Add(10*time.Second))
	time.Sleep(1200 * time.Millisecond)
	publish(0, nil, t0.Add(20*time.Second))
	wait.For(t, 10*time.Second, 20*time.Millisecond, "the window merged without the silent partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(merged) > 0
	})
	// Partition 1's part of it comes now: too late, counted, not merged.
	publish(1, window(5), time.Time{})
	wait.For(t, 10*time.Second, 20*time.Millisecond, "the late part counted", func() bool { return late() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if got := merged[0].Edges[k].Requests; got != 7 {
		t.Errorf("merged window has %d calls, want partition 0's 7", got)
	}
	if v := testutil.ToFloat64(n.m.errors.WithLabelValues("summary")); v != 0 {
		t.Errorf("%v summaries unreadable", v)
	}
}
