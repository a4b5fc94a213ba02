//go:build integration

package main

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/internal/syncbuf"
)

// TestIntegrationPoisonMessages: garbage, a truncated message and an
// oversize one in the middle of a real-Kafka stream are each counted by
// reason, logged once per reason, copied to the dead-letter topic with
// headers naming the reason and the source offset, and skipped: every good
// message around them is consumed, offsets are committed past them, and a
// restarted detector does not read them again.
func TestIntegrationPoisonMessages(t *testing.T) {
	bs := brokers(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, dlq := "it_poison_"+suffix, "it_poison_dlq_"+suffix
	createReadyTopic(t, bs, topic, 1)
	createReadyTopic(t, bs, dlq, 1)

	good := traceMessages(t, 0, 12, time.Now().Add(-time.Minute), time.Second)
	truncated := append([]byte(nil), good[0].Value[:len(good[0].Value)/2]...)
	poison := map[int]struct {
		value  []byte
		reason string
	}{
		2:  {[]byte("definitely \xff not protobuf"), "not_protobuf"},
		5:  {truncated, "truncated"},
		8:  {bytes.Repeat([]byte{0x0a, 0x00}, 40<<10), "oversize"}, // 80 KiB against a 64 KiB limit
		11: {[]byte("\xffagain not protobuf"), "not_protobuf"},
	}
	var msgs []kafka.Message // offsets 0, 1, ...: poison at its key's offset
	for _, g := range good {
		if p, ok := poison[len(msgs)]; ok {
			msgs = append(msgs, kafka.Message{Value: p.value})
		}
		msgs = append(msgs, g)
	}
	produceMessages(t, &kafka.Transport{}, bs, topic, msgs...)

	cfg := topicDetectorConfig(bs, topic)
	cfg.Kafka.DeadLetterTopic = dlq
	cfg.Kafka.MaxMessageBytes = 64 << 10
	cfg.Kafka.CommitInterval = 50 * time.Millisecond
	cfg.Kafka.LogInterval = time.Hour // "logged once" must not depend on how fast the test runs
	var logs syncbuf.Buffer
	m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	addr := m.Addr(wctx)
	wcancel()
	if addr == "" {
		cancel()
		t.Fatalf("detector did not start: %v", <-done)
	}
	waitMetric(t, addr, "causeway_spans_total", float64(len(good)*spansPerTrace))
	waitMetric(t, addr, "causeway_consume_commits_total", float64(len(msgs)))
	waitMetric(t, addr, `causeway_consume_dead_letter_total{result="ok"}`, float64(len(poison)))
	for reason, want := range map[string]float64{"not_protobuf": 2, "truncated": 1, "oversize": 1} {
		if got := scrape(t, addr, `causeway_consume_errors_total{reason="`+reason+`"}`); got != want {
			t.Errorf("errors{%s} = %v, want %v", reason, got, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("detector stopped with %v", err)
	}
	for reason, want := range map[string]int{"not_protobuf": 1, "truncated": 1, "oversize": 1} {
		if got := strings.Count(logs.String(), "reason="+reason); got != want {
			t.Errorf("%d log lines for %s, want %d:\n%s", got, reason, want, logs.String())
		}
	}

	// The dead-letter topic holds each poison message, byte for byte, with
	// headers naming the reason and where it came from.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: bs, Topic: dlq, Partition: 0, StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	for range poison {
		dm, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("read dead-letter topic: %v", err)
		}
		h := map[string]string{}
		for _, x := range dm.Headers {
			h[x.Key] = string(x.Value)
		}
		off, err := strconv.Atoi(h["causeway.source.offset"])
		p, ok := poison[off]
		switch {
		case err != nil || !ok:
			t.Errorf("dead letter with headers %v: not a poison message's offset", h)
		case h["causeway.reason"] != p.reason || h["causeway.source.topic"] != topic || h["causeway.source.partition"] != "0":
			t.Errorf("dead letter of offset %d: headers %v, want reason %s from %s/0", off, h, p.reason, topic)
		case !bytes.Equal(dm.Value, p.value):
			t.Errorf("dead letter of offset %d: value differs from the message produced", off)
		}
	}

	assertCommittedTo(t, bs, cfg.Kafka.GroupID, topic, 0, int64(len(msgs)))

	// A restarted detector starts after them: it reads only the new message.
	produceMessages(t, &kafka.Transport{}, bs, topic, traceMessages(t, 100, 1, time.Now(), 0)...)
	_, addr, stop := startMain(t, cfg)
	waitMetric(t, addr, "causeway_consume_commits_total", 1)
	for _, reason := range []string{"not_protobuf", "truncated", "oversize"} {
		if got := scrape(t, addr, `causeway_consume_errors_total{reason="`+reason+`"}`); got != 0 {
			t.Errorf("after restart errors{%s} = %v: a poison message was read again", reason, got)
		}
	}
	stop()
}

// assertCommittedTo checks the group's committed offset of one partition.
func assertCommittedTo(t *testing.T, bs []string, group, topic string, partition int, want int64) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(bs...), Transport: &kafka.Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {partition}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == partition && p.CommittedOffset != want {
			t.Errorf("%s/%d: committed %d, want %d", topic, partition, p.CommittedOffset, want)
		}
	}
}
