//go:build integration

package main

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/internal/simtest"
	"github.com/causeway/causeway/sim"
)

// TestIntegrationCrashReplay replays a simulated fault (12 minutes of
// normal traffic, paymentservice 150 ms slower for 3 minutes, 2 more
// minutes) from a real Kafka topic through the detector binary twice: once
// without interruption, and once SIGKILLed at random points (seeded by
// CAUSEWAY_CRASH_SEED, or the clock, and logged) and restarted from the
// same state directory until it has consumed everything. Both must end
// with the same incidents (id, state, revision, top suspect) and the same
// alert events at their webhook receivers, and no span may come too late
// for its window in any life; the killed one may deliver an event more
// than once, always with the same idempotency key. The event
// times lie ahead of the wall clock, so windows close on event time alone
// and the replay runs as fast as the detector reads.
//
// CAUSEWAY_CRASH_KILLS sets how many kills (default 3; make crash: 10).
func TestIntegrationCrashReplay(t *testing.T) {
	bs := brokers(t)
	kills := 3
	if v := os.Getenv("CAUSEWAY_CRASH_KILLS"); v != "" {
		var err error
		if kills, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CAUSEWAY_CRASH_KILLS: %v", err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CAUSEWAY_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CAUSEWAY_CRASH_SEED: %v", err)
		}
	}
	t.Logf("CAUSEWAY_CRASH_SEED=%d CAUSEWAY_CRASH_KILLS=%d", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))

	bin := buildDetector(t)
	topic := "it_crash_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// One partition: a detector that starts on several reads the first
	// fetched one ahead, and spans of the others can come too late for
	// windows closed meanwhile — at the start of any run, crashed or not,
	// and differently each time (see docs/operations.md, "Crash safety").
	createTopic(t, bs, topic, 1)
	total := produceScenario(t, bs, topic)
	t.Logf("%d messages in %s", total, topic)

	began := time.Now()
	straight := newCrashRun(t, bin, bs, topic, "straight")
	p := straight.start()
	straight.waitConsumed(p, total)
	straightIncs, straightCalls := straight.incidents(p), straight.calls(p)
	t.Logf("uninterrupted run: %v; checkpoints: %v written, last %v bytes in %.1f ms",
		time.Since(began).Round(time.Millisecond), scrape(t, p.addr, `causeway_checkpoints_total{result="ok"}`),
		scrape(t, p.addr, "causeway_checkpoint_bytes"), 1000*scrape(t, p.addr, "causeway_checkpoint_write_seconds"))
	straight.stop(p)

	// Kill points: random positions in the topic, in order.
	var points []int
	for range kills {
		points = append(points, total/20+rng.IntN(total*9/10))
	}
	slices.Sort(points)
	began = time.Now()
	killed := newCrashRun(t, bin, bs, topic, "killed")
	var replayed int64
	late := 0.0 // spans too late, in every life of the killed run
	for i, at := range points {
		from := killed.committed()
		t0 := time.Now()
		p := killed.start()
		ready := time.Since(t0)
		// This process starts at the group's committed offsets.
		reached := killed.waitRead(p, max(1, at-int(from)))
		late += scrape(t, p.addr, "causeway_graph_spans_too_late_total")
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		after := killed.committed()
		replayed += int64(from) + int64(reached) - after
		t.Logf("life %d: started at offset %d, ready in %v; SIGKILL at about offset %d (target %d), %v s after start; committed then: %d, so %d messages to read again",
			i+1, from, ready.Round(time.Millisecond), from+int64(reached), at, time.Since(t0).Seconds(), after, from+int64(reached)-after)
	}
	p = killed.start()
	killed.waitConsumed(p, total)
	killedIncs, killedCalls := killed.incidents(p), killed.calls(p)
	late += scrape(t, p.addr, "causeway_graph_spans_too_late_total")
	killed.stop(p)
	t.Logf("killed run: %v, %d kills, %d messages read again in all", time.Since(began).Round(time.Millisecond), kills, replayed)

	if len(straightIncs) == 0 {
		t.Fatal("the uninterrupted run found no incident")
	}
	// Every restart reads its backlog in event time: no span of any life
	// came after its window had closed (each life's count read just
	// before its SIGKILL).
	if late != 0 {
		t.Errorf("%v spans too late across the killed run's lives, want 0", late)
	}
	if !slices.Equal(straightIncs, killedIncs) {
		t.Errorf("incidents uninterrupted:\n%s\nkilled and restarted:\n%s", strings.Join(straightIncs, "\n"), strings.Join(killedIncs, "\n"))
	}
	// Nothing lost, nothing counted twice: every call of every closed
	// window, per edge, as the service graph's totals since the start.
	if straightCalls != killedCalls || straightCalls == "" {
		t.Errorf("calls per edge since the start, uninterrupted:\n%s\nkilled and restarted:\n%s", straightCalls, killedCalls)
	}
	want, got := straight.hook.events(), killed.hook.events()
	if !slices.Equal(want, got) {
		t.Errorf("alert events uninterrupted:\n%s\nkilled and restarted:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	if d := straight.hook.duplicates(); d != 0 {
		t.Errorf("the uninterrupted run delivered %d events twice", d)
	}
	t.Logf("incidents: %s; events: %s; duplicate deliveries after kills: %d (same idempotency key)",
		strings.Join(straightIncs, "; "), strings.Join(want, "; "), killed.hook.duplicates())
}

// produceScenario writes the simulator's fault scenario to topic, one
// message per trace keyed by trace id, and returns how many messages.
func produceScenario(t *testing.T, bs []string, topic string) int {
	t.Helper()
	cfg := sim.Default()
	cfg.Seed, cfg.Rate = 7, 20
	cfg.Start = time.Now().Add(time.Minute).Truncate(10 * time.Second) // ahead of the wall clock
	s := simtest.New(t, cfg, "latency:paymentservice:+150ms@12m/3m")
	w := &kafka.Writer{Addr: kafka.TCP(bs...), Topic: topic, Balancer: &kafka.Hash{}, Transport: &kafka.Transport{},
		BatchTimeout: 5 * time.Millisecond, BatchSize: 1000, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for range 17 * 6 {
		var msgs []kafka.Message
		for _, m := range s.Messages(10 * time.Second) {
			msgs = append(msgs, kafka.Message{Key: m.Key, Value: m.Value})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		n += len(msgs)
	}
	return n
}
