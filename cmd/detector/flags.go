package main

import (
	"bytes"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/sim"
)

// splitList splits a comma-separated list, dropping blank items.
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
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", cfg.CPUProfile, "write a CPU profile of the whole run here, from start to stop (go tool pprof)")
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
