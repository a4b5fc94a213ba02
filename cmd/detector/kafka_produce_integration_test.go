//go:build integration

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/internal/wait"
)

// traceMessages are n traces as the Collector writes them (one message per
// trace, keyed by trace id), their spans ending from start on, step apart.
func traceMessages(t *testing.T, first, n int, start time.Time, step time.Duration) []kafka.Message {
	t.Helper()
	var msgs []kafka.Message
	for i := range n {
		req := traceRequest(first+i, start.Add(time.Duration(i)*step))
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "%x", req.ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId), Value: b})
	}
	return msgs
}

// createReadyTopic creates topic and waits until every partition has a
// leader: a writer that asks sooner is told the topic does not exist.
func createReadyTopic(t *testing.T, bs []string, topic string, partitions int) {
	t.Helper()
	createTopic(t, bs, topic, partitions)
	client := &kafka.Client{Addr: kafka.TCP(bs...), Transport: &kafka.Transport{}}
	wait.Report(t, 30*time.Second, 100*time.Millisecond, "topic "+topic+" has leaders", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return false, err.Error()
		}
		for _, tp := range md.Topics {
			if tp.Error != nil || len(tp.Partitions) != partitions {
				return false, fmt.Sprint(tp.Error, len(tp.Partitions), " partitions")
			}
			for _, p := range tp.Partitions {
				if p.Error != nil || p.Leader.ID < 0 {
					return false, fmt.Sprint("partition ", p.ID, ": ", p.Error)
				}
			}
		}
		return len(md.Topics) == 1, ""
	})
}

// produceMessages writes msgs with a writer of their own (see MEASURED.md on
// kafka-go's shared transport).
func produceMessages(t *testing.T, tr *kafka.Transport, brokers []string, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, Transport: tr,
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}
