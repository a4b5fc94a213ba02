//go:build integration

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/internal/metrictest"
	"github.com/causeway/causeway/internal/simtest"
	"github.com/causeway/causeway/internal/wait"
	"github.com/causeway/causeway/sim"
)

// TestIntegrationBacklogInEventTime: a new consumer group that reads a
// backlog from the earliest offset (as after a restart, an outage or a
// first start) reads it in event time, with the default idle_advance: no
// span is too late, and it opens the same incidents as a detector whose
// event time moves with the spans alone (idle_advance 0, what a live run
// sees). Before, the wall clock moved event time to now less 30 s while
// the group was still joining, and most of the backlog was dropped.
func TestIntegrationBacklogInEventTime(t *testing.T) {
	bs := brokers(t)
	topic := "it_backlog_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	createTopic(t, bs, topic, 4)

	// Twelve minutes of traffic ending now, paymentservice slower from
	// minute ten for a minute, written at once.
	cfg := sim.Default()
	cfg.Start = time.Now().Add(-12 * time.Minute)
	s := simtest.New(t, cfg, "latency:paymentservice:+200ms@10m/1m")
	w := &kafka.Writer{Addr: kafka.TCP(bs...), Topic: topic, Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireOne}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	messages := 0
	if err := catchUp(ctx, s, func(ctx context.Context, msgs []sim.Message) error {
		kms := make([]kafka.Message, len(msgs))
		for i, m := range msgs {
			kms[i] = kafka.Message{Key: m.Key, Value: m.Value}
		}
		messages += len(kms)
		return w.WriteMessages(ctx, kms...)
	}); err != nil {
		t.Fatal(err)
	}

	read := func(idle time.Duration) (*Main, []incident.Incident) {
		c := topicDetectorConfig(bs, topic)
		c.Kafka.GroupID = fmt.Sprintf("it_backlog_%v_%d", idle, time.Now().UnixNano())
		c.Idle = idle
		m, _, stop := startMain(t, c)
		defer stop()
		wait.For(t, 2*time.Minute, 250*time.Millisecond, "the backlog applied", func() bool {
			return metrictest.Value(t, m.reg, "causeway_consume_commits_total") >= float64(messages)
		})
		// Windows up to the fault's end and a minute past it are closed by
		// the spans after them, in both runs.
		until := cfg.Start.Add(12 * time.Minute).Add(-30 * time.Second)
		return m, m.incidents.List("", time.Time{}, until)
	}
	live, liveIncs := read(0)
	backlog, backlogIncs := read(30 * time.Second)

	late := metrictest.Value(t, backlog.reg, "causeway_graph_spans_too_late_total")
	spans := metrictest.Value(t, backlog.reg, "causeway_spans_total")
	t.Logf("%d messages, %v spans, %v too late (%v in the event-time run); incidents: live %d, backlog %d", messages, spans, late,
		metrictest.Value(t, live.reg, "causeway_graph_spans_too_late_total"), len(liveIncs), len(backlogIncs))
	if late != 0 {
		t.Errorf("%v of %v spans too late reading the backlog with idle_advance 30s", late, spans)
	}
	if liveTotal := metrictest.Value(t, live.reg, "causeway_spans_total"); spans != liveTotal {
		t.Errorf("spans read: %v from the backlog, %v live", spans, liveTotal)
	}
	if len(liveIncs) == 0 {
		t.Fatal("no incident in the event-time run: the comparison would be empty")
	}
	summary := func(incs []incident.Incident) []string {
		var out []string
		for _, inc := range incs {
			top := ""
			if len(inc.Suspects) > 0 {
				top = inc.Suspects[0].Service
			}
			out = append(out, inc.OpenedAt.UTC().Format(time.TimeOnly)+" "+top)
		}
		return out
	}
	if a, b := fmt.Sprint(summary(liveIncs)), fmt.Sprint(summary(backlogIncs)); a != b {
		t.Errorf("incidents differ:\n live    %s\n backlog %s", a, b)
	}
	if !slices.ContainsFunc(summary(liveIncs), func(s string) bool { return strings.HasSuffix(s, " paymentservice") }) {
		t.Errorf("incidents %v: none with paymentservice on top", summary(liveIncs))
	}
}
