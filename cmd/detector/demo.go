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
	scfg, err := simConfig(cfg.Seed, cfg.History, cfg.Faults, log, "demo fault scheduled")
	if err != nil {
		return nil, fmt.Errorf("demo.faults: %w", err)
	}
	scfg.ByTrace = cfg.ByTrace
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
	return d, nil
}

// simConfig is the simulator's default system with seed, starting history
// ago: that much normal traffic is sent at once (catchUp), so baselines are
// learned before the first fault. faults, written as --fault takes them
// with starts counted from now, replace the default fault; each is logged
// as msg, as typed, with the wall-clock time it starts.
func simConfig(seed int64, history time.Duration, faults []string, log *slog.Logger, msg string) (sim.Config, error) {
	cfg := sim.Default()
	cfg.Seed = seed
	now := time.Now()
	cfg.Start = now.Add(-history)
	if len(faults) > 0 {
		cfg.Faults = nil
		for _, f := range faults {
			fault, err := sim.ParseFault(f)
			if err != nil {
				return cfg, err
			}
			cfg.Faults = append(cfg.Faults, fault)
		}
	}
	for i := range cfg.Faults {
		log.Info(msg, "fault", cfg.Faults[i].String(), "starts_at", now.Add(cfg.Faults[i].Start).Format(time.TimeOnly))
		cfg.Faults[i].Start += history // the simulation's clock starts at the history's start
	}
	return cfg, nil
}

// catchUp publishes the simulated traffic from the simulation's start up
// to now at once, in chunks of up to 30 s (a writer flushes full batches
// at once; the last chunk stops at now, so simulated time does not run
// ahead of the clock).
func catchUp(ctx context.Context, s *sim.Sim, publish func(context.Context, []sim.Message) error) error {
	for ctx.Err() == nil {
		chunk := min(30*time.Second, time.Until(s.Now()).Abs().Truncate(time.Second))
		if !s.Now().Before(time.Now()) || chunk < time.Second {
			return nil
		}
		if err := publish(ctx, s.Messages(chunk)); err != nil {
			return err
		}
	}
	return nil
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
	if err := catchUp(ctx, d.sim, publish); err != nil {
		return err
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
