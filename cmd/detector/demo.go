package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/sim"
)

// faultExample shows the simulator's fault syntax in flag help.
const faultExample = "latency:paymentservice:+200ms@60s/120s"

// demoPartitions is how many partitions the embedded topic has.
const demoPartitions = 3

// demo is the embedded default: an in-process Kafka-protocol broker (kfake)
// and the simulator writing OTLP protobuf into it, exactly as the Collector's
// kafka exporter would. The detector reads it like any Kafka.
type demo struct {
	cluster *kfake.Cluster
	writer  *kafka.Writer
	sim     *sim.Sim
	speed   float64
	history time.Duration
	log     *slog.Logger
	sent    prometheus.Counter
}

func startDemo(ctx context.Context, cfg DemoConfig, log *slog.Logger, reg prometheus.Registerer) (*demo, error) {
	scfg := sim.Default()
	scfg.Seed = cfg.Seed
	// The simulation starts History ago: that much normal traffic is
	// replayed at once, so baselines are learned before the first fault.
	scfg.Start = time.Now().Add(-cfg.History)
	scfg.ByTrace = cfg.ByTrace
	if len(cfg.Faults) > 0 {
		scfg.Faults = nil
		for _, f := range cfg.Faults {
			fault, err := sim.ParseFault(f)
			if err != nil {
				return nil, fmt.Errorf("demo.faults: %w", err)
			}
			scfg.Faults = append(scfg.Faults, fault)
		}
	}
	for i := range scfg.Faults { // fault times count from now, not from the history's start
		scfg.Faults[i].Start += cfg.History
	}
	s, err := sim.New(scfg)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(demoPartitions, consume.DefaultTopic))
	if err != nil {
		return nil, fmt.Errorf("demo: start in-process broker: %w", err)
	}
	d := &demo{
		cluster: cluster,
		sim:     s,
		speed:   cfg.Speed,
		history: cfg.History,
		log:     log,
		writer: &kafka.Writer{
			Addr:      kafka.TCP(cluster.ListenAddrs()...),
			Topic:     consume.DefaultTopic,
			Balancer:  &kafka.Hash{}, // keyed by trace id when by_trace: a trace stays on one partition
			BatchSize: 1000,          // BatchBytes stays at 1 MiB, the broker's limit
			// Flush often: the demo should show spans as they happen.
			BatchTimeout: 5 * time.Millisecond,
			RequiredAcks: kafka.RequireOne,
			Transport:    &kafka.Transport{},
		},
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_demo_messages_sent_total", Help: "Messages the embedded simulator wrote to the in-process broker.",
		}),
	}
	reg.MustRegister(d.sent)
	for _, f := range scfg.Faults {
		typed := f // as the user wrote it: START from now, not from the history's start
		typed.Start -= cfg.History
		log.Info("demo fault scheduled", "fault", typed.String(), "starts_at", scfg.Start.Add(f.Start).Format(time.TimeOnly))
	}
	return d, nil
}

// kafkaConfig is how the detector reaches the in-process broker.
func (d *demo) kafkaConfig() consume.Config {
	return consume.Config{Brokers: d.cluster.ListenAddrs()}
}

// Run feeds simulated traffic into the broker until ctx ends: first the
// history, as fast as the broker takes it, then live at the set speed.
func (d *demo) Run(ctx context.Context) error {
	publish := func(ctx context.Context, msgs []sim.Message) error {
		kms := make([]kafka.Message, len(msgs))
		for i, m := range msgs {
			kms[i] = kafka.Message{Key: m.Key, Value: m.Value}
		}
		if err := d.writer.WriteMessages(ctx, kms...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("write to in-process broker: %w", err)
		}
		d.sent.Add(float64(len(kms)))
		return nil
	}
	if d.history > 0 {
		d.log.Info("demo: replaying simulated history so baselines know normal", "history", d.history)
	}
	for ctx.Err() == nil {
		// Big chunks: the writer flushes full batches at once, while a
		// small write waits out its batch timeout. The last one stops at
		// now, so simulated time does not run ahead of the clock.
		chunk := min(30*time.Second, time.Until(d.sim.Now()).Abs().Truncate(time.Second))
		if !d.sim.Now().Before(time.Now()) || chunk < time.Second {
			break
		}
		if err := publish(ctx, d.sim.Messages(chunk)); err != nil {
			return err
		}
	}
	err := d.sim.Run(ctx, d.speed, publish)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close stops the writer and the broker. Safe to call twice.
func (d *demo) Close() error {
	err := d.writer.Close()
	d.cluster.Close()
	return err
}
