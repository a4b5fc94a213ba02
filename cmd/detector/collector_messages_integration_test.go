//go:build integration

package main

import (
	"context"
	"errors"
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/span"
)

// checkMessages reads every message of topic back and checks the
// Collector keyed them as configured: with partition_traces_by_id one trace
// per message, keyed by its hex id, spread over all partitions; without
// it, no key and batches holding many traces.
func checkMessages(t *testing.T, brokers []string, topic string, partitions int, byID bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}}
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
	used, messages, multiTrace := 0, 0, 0
	for _, po := range ends.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("partition %d: %v", po.Partition, po.Error)
		}
		if po.LastOffset > 0 {
			used++
		}
		for next := int64(0); next < po.LastOffset; {
			res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: po.Partition, Offset: next, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: time.Second})
			if err == nil {
				err = res.Error
			}
			if err != nil {
				t.Fatalf("fetch partition %d at offset %d of %d: %v", po.Partition, next, po.LastOffset, err)
			}
			for {
				rec, err := res.Records.ReadRecord()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("read partition %d after offset %d: %v", po.Partition, next, err)
				}
				next = rec.Offset + 1
				messages++
				key, value := readBytes(t, rec.Key), readBytes(t, rec.Value)
				spans, err := dec.Decode(value)
				if err != nil {
					t.Fatalf("partition %d offset %d: %v", po.Partition, rec.Offset, err)
				}
				traces := map[string]bool{}
				for _, s := range spans.Spans {
					traces[s.TraceID.String()] = true
				}
				if len(traces) > 1 {
					multiTrace++
				}
				switch {
				case byID && (!hexTraceID.Match(key) || len(traces) != 1 || !traces[string(key)]):
					t.Fatalf("partition %d offset %d: key %q for %d traces; want one trace keyed by its hex id", po.Partition, rec.Offset, key, len(traces))
				case !byID && len(key) != 0:
					t.Fatalf("partition %d offset %d: key %q, want none without partition_traces_by_id", po.Partition, rec.Offset, key)
				}
			}
		}
	}
	t.Logf("%d messages on %d of %d partitions, %d of them with several traces", messages, used, partitions, multiTrace)
	if byID && used != partitions {
		t.Errorf("trace-keyed messages reached %d of %d partitions", used, partitions)
	}
	if !byID && multiTrace == 0 {
		t.Errorf("no message holds several traces: the Collector did not batch")
	}
}

var hexTraceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// readBytes reads a record's key or value; nil is empty.
func readBytes(t *testing.T, b kafka.Bytes) []byte {
	t.Helper()
	if b == nil {
		return nil
	}
	defer b.Close()
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
