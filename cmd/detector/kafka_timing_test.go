//go:build integration

package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/internal/metrictest"
	"github.com/causeway/causeway/sim"
	"github.com/causeway/causeway/span"
)

// kafkaWorkload is what BenchmarkKafkaEndToEnd reads: one simulated minute
// of the shop at 2,000 requests/s (about 3 million spans), as the
// Collector's kafka exporter writes it without partition_traces_by_id:
// batches of up to 1,000 spans, spread over 6 partitions.
var kafkaWorkload struct {
	once           sync.Once
	topic          string
	messages, span int
	bytes          int64
	err            error
}

func produceWorkload(b *testing.B, brokers []string) {
	w := &kafkaWorkload
	w.once.Do(func() {
		w.topic = fmt.Sprintf("bench_spans_%d", time.Now().UnixNano())
		cfg := sim.Default()
		cfg.Faults, cfg.Rate, cfg.ByTrace = nil, 2000, false
		s, err := sim.New(cfg)
		if err != nil {
			w.err = err
			return
		}
		createTopic(b, brokers, w.topic, 6)
		dec := consume.NewDecoder(consume.EncodingProto, span.Limits{}, 0)
		wr := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: w.topic, Balancer: &kafka.RoundRobin{},
			BatchSize: 64, BatchBytes: 900_000, // under the broker's 1 MB record batch limit
			RequiredAcks: kafka.RequireOne, WriteTimeout: time.Minute}
		defer wr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for range 60 {
			var batch []kafka.Message
			for _, m := range s.Messages(time.Second) {
				batch = append(batch, kafka.Message{Value: m.Value})
				w.bytes += int64(len(m.Value))
				res, err := dec.Decode(m.Value)
				if err != nil {
					w.err = err
					return
				}
				w.span += len(res.Spans)
			}
			if w.err = wr.WriteMessages(ctx, batch...); w.err != nil {
				return
			}
			w.messages += len(batch)
		}
	})
	if w.err != nil {
		b.Fatalf("produce the workload: %v", w.err)
	}
}

// BenchmarkKafkaEndToEnd is the whole detector reading from a real broker
// on this host: fetch, decode, join, windows, baselines and incidents. Each
// iteration is a new consumer group reading the workload from the start;
// spans/s is measured from its first applied message to its last, so the
// group's join is left out. "serial" decodes on one goroutine and joins
// on another; "parallel" is the default, a decoder and a graph worker per
// CPU.
func BenchmarkKafkaEndToEnd(b *testing.B) {
	bs := brokers(b)
	produceWorkload(b, bs)
	b.Run("serial", func(b *testing.B) { kafkaEndToEnd(b, bs, 1) })
	b.Run("parallel", func(b *testing.B) { kafkaEndToEnd(b, bs, 0) })
}

// kafkaEndToEnd runs the benchmark with the given decoders and graph
// workers (0: one per CPU).
func kafkaEndToEnd(b *testing.B, bs []string, workers int) {
	w := &kafkaWorkload
	var sustained time.Duration
	for i := 0; b.Loop(); i++ {
		cfg := defaultConfig()
		cfg.Listen = "127.0.0.1:0"
		cfg.Idle = 0 // the spans are dated in the past: event time alone moves
		cfg.Kafka.Brokers, cfg.Kafka.Topic = bs, w.topic
		cfg.Kafka.GroupID = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		cfg.Kafka.Decoders, cfg.Graph.Workers = workers, workers
		m := &Main{Config: cfg}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		if m.Addr(ctx) == "" {
			b.Fatal("the detector did not start")
		}
		var first time.Time
		deadline := time.Now().Add(5 * time.Minute)
		for {
			applied := metrictest.Value(b, m.reg, "causeway_consume_commits_total")
			if applied > 0 && first.IsZero() {
				first = time.Now()
			}
			if int(applied) >= w.messages {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("applied %v of %d messages in 5 minutes", applied, w.messages)
			}
			time.Sleep(5 * time.Millisecond) // polling a counter: nothing to wait on
		}
		sustained += time.Since(first)
		// Read as fast as it was, the stream must still be joined whole.
		if late := metrictest.Value(b, m.reg, "causeway_graph_spans_too_late_total"); late > float64(w.span)/100 {
			b.Fatalf("%v of %d spans came too late for their window", late, w.span)
		}
		if joined := metrictest.Value(b, m.reg, "causeway_graph_traces_joined_total"); joined < float64(w.span)/40 {
			b.Fatalf("%v traces joined from %d spans", joined, w.span)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.span)*float64(b.N)/sustained.Seconds(), "spans/s")
	b.ReportMetric(float64(w.bytes)*float64(b.N)/sustained.Seconds()/1e6, "MB/s")
}
