package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/fleet"
	"github.com/causeway/causeway/graph"
)

// Config is everything `detector run` can be told: one YAML file, then
// environment variables, then flags, each overriding the one before.
type Config struct {
	// Listen is the address of the HTTP API. Default 127.0.0.1:8080. Any
	// address but a loopback one needs API.Token.
	Listen string `yaml:"listen"`
	// API secures and bounds the HTTP API: bearer token, TLS, timeouts and
	// size limits.
	API APIConfig `yaml:"api"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// Pprof mounts /debug/pprof on the API listener.
	Pprof bool `yaml:"pprof"`
	// Kafka is where spans come from. With no brokers, `detector run`
	// starts the embedded demo: an in-process broker fed by the simulator.
	Kafka consume.Config `yaml:"kafka"`
	// Cluster runs this detector as one member of a fleet sharing the
	// Kafka consumer group (docs/operations.md).
	Cluster fleet.Config `yaml:"cluster"`
	// Graph sets windows and bounds of the service graph.
	Graph graph.Config `yaml:"graph"`
	// MemoryBudget is what the detector may hold in all: auto (the
	// default: GOMEMLIMIT, else 90% of the container's memory limit, else
	// 2GiB) or a size such as 1536MiB. The graph's caps left unset derive
	// from it, and the Go runtime's soft memory limit is set to it.
	MemoryBudget string `yaml:"memory_budget"`
	// Idle is how long the wall clock may run ahead of the newest span
	// before event time is advanced anyway, so windows close when traffic
	// stops. Default 30s.
	Idle time.Duration `yaml:"idle_advance"`
	// StateDir keeps what the detector has learned (baseline snapshots)
	// across restarts. Empty: nothing is kept.
	StateDir string `yaml:"state_dir"`
	// SnapshotInterval is how often baselines are written to StateDir;
	// they are also written at shutdown. Default 1m.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// Alerts are the receivers that hear about incidents (see
	// docs/alerts.md). WebhookURL, from CAUSEWAY_WEBHOOK_URL or
	// --webhook-url, adds a generic webhook receiver named "webhook".
	Alerts     alert.Config `yaml:"alerts"`
	WebhookURL string       `yaml:"-"`
	// CPUProfile, from --cpuprofile, is where a CPU profile of the whole
	// run is written, from start to stop.
	CPUProfile string `yaml:"-"`
	// Demo configures the embedded demo.
	Demo DemoConfig `yaml:"demo"`
}

// DemoConfig configures the embedded demo of `detector run` without brokers.
type DemoConfig struct {
	// Faults to inject, in the simulator's syntax; empty means the default
	// scenario's fault.
	Faults []string `yaml:"faults"`
	// Speed is simulated seconds per wall-clock second. Default 1.
	Speed float64 `yaml:"speed"`
	// Seed makes the simulated traffic reproducible. Default 1.
	Seed int64 `yaml:"seed"`
	// History is how much normal traffic before now the demo replays at
	// start, so baselines are learned before faults begin. Default 20m.
	History time.Duration `yaml:"history"`
	// ByTrace publishes one message per trace keyed by trace id, as the
	// Collector's kafka exporter does with partition_traces_by_id.
	ByTrace bool `yaml:"by_trace"`
}

func defaultConfig() Config {
	return Config{Listen: "127.0.0.1:8080", API: defaultAPIConfig(), LogLevel: "info", MemoryBudget: "auto", Idle: 30 * time.Second, SnapshotInterval: time.Minute,
		Demo: DemoConfig{Speed: 1, Seed: 1, ByTrace: true, History: 20 * time.Minute}}
}

// Embedded reports whether the configuration asks for the embedded demo.
func (c *Config) Embedded() bool { return len(c.Kafka.Brokers) == 0 }

// Validate reports the first setting that cannot work, naming its field.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q: %w", c.Listen, err)
	}
	if err := c.API.Validate(); err != nil {
		return err
	}
	// Host names are resolved when the detector starts (Main.Run).
	if err := requireToken(context.Background(), c.Listen, c.API.Token.IsSet(), nil); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if !c.Embedded() {
		if err := c.Kafka.WithDefaults().Validate(); err != nil {
			return err
		}
	}
	if err := c.Cluster.Validate(); err != nil {
		return err
	}
	if err := c.Graph.Validate(); err != nil {
		return err
	}
	if _, _, err := parseBudget(c.MemoryBudget); err != nil {
		return err
	}
	if c.Idle < 0 {
		return errors.New("idle_advance: must not be negative")
	}
	if c.SnapshotInterval <= 0 {
		return fmt.Errorf("snapshot_interval: %v must be positive", c.SnapshotInterval)
	}
	if c.Demo.Speed <= 0 {
		return fmt.Errorf("demo.speed: %v must be positive", c.Demo.Speed)
	}
	return nil
}

// loadFile merges the YAML file at path into c. Unknown keys are errors,
// reported with their line, so a typo never silently means a default.
func (c *Config) loadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return c.decode(b, path)
}

// decode merges the YAML document b, read from path, into c.
func (c *Config) decode(b []byte, path string) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // EOF: empty file
		return fmt.Errorf("config %s: %w", path, explainUnknownKeys(err))
	}
	return nil
}

// envOverrides applies CAUSEWAY_* environment variables.
func (c *Config) envOverrides(getenv func(string) string) error {
	if v := getenv("CAUSEWAY_LISTEN"); v != "" {
		c.Listen = v
	}
	if getenv("CAUSEWAY_API_TOKEN") != "" {
		// Read by Main.Run; the value never enters the configuration.
		c.API.Token = alert.Secret{Env: "CAUSEWAY_API_TOKEN"}
	}
	if v := getenv("CAUSEWAY_KAFKA_BROKERS"); v != "" {
		c.Kafka.Brokers = splitList(v)
	}
	if v := getenv("CAUSEWAY_KAFKA_TOPIC"); v != "" {
		c.Kafka.Topic = v
	}
	if v := getenv("CAUSEWAY_KAFKA_GROUP"); v != "" {
		c.Kafka.GroupID = v
	}
	if v := getenv("CAUSEWAY_KAFKA_ENCODING"); v != "" {
		c.Kafka.Encoding = consume.Encoding(v)
	}
	if v := getenv("CAUSEWAY_KAFKA_SASL_PASSWORD"); v != "" {
		c.Kafka.SASL.Password = v
	}
	if v := getenv("CAUSEWAY_MEMORY_BUDGET"); v != "" {
		c.MemoryBudget = v
	}
	if v := getenv("CAUSEWAY_STATE_DIR"); v != "" {
		c.StateDir = v
	}
	if v := getenv("CAUSEWAY_LOG_LEVEL"); v != "" {
		c.LogLevel = v
	}
	if v := getenv("CAUSEWAY_CLUSTER"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("CAUSEWAY_CLUSTER: %q is not true or false", v)
		}
		c.Cluster.Enabled = on
	}
	if v := getenv("CAUSEWAY_WEBHOOK_URL"); v != "" {
		c.WebhookURL = v
	}
	return nil
}
