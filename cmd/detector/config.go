package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/fleet"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/sim"
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
	return Config{Listen: "127.0.0.1:8080", API: defaultAPIConfig(), LogLevel: "info", Idle: 30 * time.Second, SnapshotInterval: time.Minute,
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

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// listFlag is a repeatable or comma-separated string flag.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l listFlag) Set(s string) error { *l.v = append(*l.v, splitList(s)...); return nil }

// parseRunFlags builds the run configuration from args, the environment and
// the optional --config file.
func parseRunFlags(args []string, getenv func(string) string) (Config, error) {
	// The config file is read first, so find it before the other flags.
	cfg := defaultConfig()
	pre := flag.NewFlagSet("run", flag.ContinueOnError)
	pre.SetOutput(new(bytes.Buffer))
	path := pre.String("config", "", "")
	_ = pre.Parse(args) // errors are reported by the full parse below
	if *path != "" {
		if err := cfg.loadFile(*path); err != nil {
			return cfg, err
		}
	}
	if err := cfg.envOverrides(getenv); err != nil {
		return cfg, err
	}

	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.String("config", "", "YAML configuration file")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP API address")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&cfg.Pprof, "pprof", cfg.Pprof, "serve /debug/pprof on the API listener")
	fs.StringVar(&cfg.API.TLS.CertFile, "tls-cert", cfg.API.TLS.CertFile, "serve the API over HTTPS with this PEM certificate (with --tls-key)")
	fs.StringVar(&cfg.API.TLS.KeyFile, "tls-key", cfg.API.TLS.KeyFile, "the PEM private key of --tls-cert")
	var brokers []string
	fs.Var(listFlag{&brokers}, "brokers", "Kafka bootstrap brokers host:port (comma-separated or repeated); none starts the embedded demo")
	fs.StringVar(&cfg.Kafka.Topic, "topic", cfg.Kafka.Topic, "Kafka topic (default otlp_spans)")
	fs.StringVar(&cfg.Kafka.GroupID, "group", cfg.Kafka.GroupID, "Kafka consumer group (default causeway)")
	enc := fs.String("encoding", string(cfg.Kafka.Encoding), "otlp_proto (default) or otlp_json")
	fs.StringVar(&cfg.Kafka.DeadLetterTopic, "dead-letter-topic", cfg.Kafka.DeadLetterTopic, "copy undecodable messages to this topic")
	fs.DurationVar(&cfg.Graph.Window, "window", cfg.Graph.Window, "event-time window length (default 10s)")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "keep baselines, incidents and undelivered alerts here across restarts (prime it with detector replay --state-dir)")
	fs.BoolVar(&cfg.Cluster.Enabled, "cluster", cfg.Cluster.Enabled, "run as one member of a fleet sharing the consumer group (also CAUSEWAY_CLUSTER=true)")
	fs.StringVar(&cfg.WebhookURL, "webhook-url", cfg.WebhookURL, "send incident events to this generic JSON webhook (also CAUSEWAY_WEBHOOK_URL)")
	var faults []string
	fs.Var(listFlag{&faults}, "fault", "demo: fault to inject (repeatable), KIND:TARGET[:VALUE][@START[/DURATION]] with START counted from now;\n"+
		"KIND is one of "+sim.FaultKinds+"; e.g. "+faultExample+",\n"+
		"errors:checkoutservice#PlaceOrder:25%@1m/30s, slow_db:catalog-db:+20ms@40s, 'network_delay:frontend>cartservice:+30ms@40s/1m', dead_instance:cartservice@2m/1m")
	fs.Float64Var(&cfg.Demo.Speed, "speed", cfg.Demo.Speed, "demo: simulated seconds per second")
	fs.Int64Var(&cfg.Demo.Seed, "seed", cfg.Demo.Seed, "demo: simulator seed")
	fs.DurationVar(&cfg.Demo.History, "history", cfg.Demo.History, "demo: normal traffic replayed at start so baselines are learned")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if len(brokers) > 0 {
		cfg.Kafka.Brokers = brokers
	}
	if len(faults) > 0 {
		cfg.Demo.Faults = faults
	}
	cfg.Kafka.Encoding = consume.Encoding(*enc)
	cfg.addWebhook()
	return cfg, cfg.Validate()
}

// addWebhook turns WebhookURL into a receiver, once.
func (c *Config) addWebhook() {
	if c.WebhookURL == "" || slices.ContainsFunc(c.Alerts.Receivers, func(r alert.Receiver) bool { return r.Name == "webhook" }) {
		return
	}
	c.Alerts.Receivers = append(c.Alerts.Receivers, alert.Receiver{Name: "webhook", Kind: alert.KindWebhook, URL: c.WebhookURL})
}
