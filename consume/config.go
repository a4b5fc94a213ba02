package consume

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config says where spans come from and how they are read. Zero values of
// optional fields mean their defaults.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic is the topic the Collector's kafka exporter writes. Default otlp_spans.
	Topic string `yaml:"topic"`
	// GroupID is the consumer group detectors share. Default causeway.
	GroupID string `yaml:"group_id"`
	// Encoding is otlp_proto (default) or otlp_json.
	Encoding Encoding `yaml:"encoding"`
	// StartAt is where a group with no committed offset starts: "earliest"
	// (default) or "latest".
	StartAt string `yaml:"start_at"`
	// MaxMessageBytes is the largest message accepted; larger ones are
	// skipped as oversize. Default 16 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxSpansPerMessage is the most spans one message may hold; a message
	// with more is skipped whole as too_many_spans. Default 100,000.
	MaxSpansPerMessage int `yaml:"max_spans_per_message"`
	// CommitInterval is how often applied offsets are committed. Default 1s.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// MaxClockSkew is how far in the future (by this machine's clock) a
	// span may end; later ones are rejected as bad timestamps. Default 5m.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// DeadLetterTopic, when set, receives a copy of every message skipped
	// whole, with headers naming the reason and where it came from.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// LogInterval is the least time between two log lines for the same
	// kind of bad input. Default 10s.
	LogInterval time.Duration `yaml:"log_interval"`
	// TraceKeyed says every message holds whole traces, keyed by trace id,
	// as the Collector's kafka exporter writes with partition_traces_by_id:
	// true. Several detectors (cluster mode) can then join spans per
	// partition. When false, cluster mode first re-keys spans by trace id
	// through a topic of its own. Default true; one detector alone joins
	// spans from every partition either way.
	TraceKeyed *bool `yaml:"trace_keyed"`
	// QueueMessages bounds decoded messages waiting for the next stage.
	// Default 64.
	QueueMessages int `yaml:"queue_messages"`
	// SessionTimeout is how long the group waits for a member that stopped
	// sending heartbeats before it gives the member's partitions to others
	// (or to the same detector restarted after a crash). Default 30s; the
	// broker bounds it (group.min.session.timeout.ms, 6s by default).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Decoders is how many goroutines decode messages, each taking a share
	// of the partitions. Default: the number of CPUs.
	Decoders int `yaml:"decoders"`

	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`
}

// IsTraceKeyed reports TraceKeyed, true when unset.
func (c Config) IsTraceKeyed() bool { return c.TraceKeyed == nil || *c.TraceKeyed }

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`   // PEM bundle to verify brokers; default: system roots
	CertFile           string `yaml:"cert_file"` // client certificate (mutual TLS), with KeyFile
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates to the brokers.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordFile naming a file that holds it (trailing
	// newline ignored). Never logged.
	Password     string `yaml:"-" json:"-"`
	PasswordFile string `yaml:"password_file"`
}

// Defaults for Config.
const (
	DefaultTopic   = "otlp_spans"
	DefaultGroupID = "causeway"
)

// WithDefaults returns c with every unset optional field at its default.
func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.Encoding == "" {
		c.Encoding = EncodingProto
	}
	if c.StartAt == "" {
		c.StartAt = "earliest"
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 16 << 20
	}
	if c.MaxSpansPerMessage <= 0 {
		c.MaxSpansPerMessage = 100_000
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = 5 * time.Minute
	}
	if c.LogInterval <= 0 {
		c.LogInterval = 10 * time.Second
	}
	if c.QueueMessages <= 0 {
		c.QueueMessages = 64
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.Decoders <= 0 {
		c.Decoders = runtime.GOMAXPROCS(0)
	}
	return c
}

// Validate reports the first setting that cannot work, naming its field.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker is required")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("kafka.brokers: %q is not host:port", b)
		}
	}
	if _, err := ParseEncoding(string(c.Encoding)); err != nil {
		return fmt.Errorf("kafka.encoding: %w", err)
	}
	if s := c.StartAt; s != "" && s != "earliest" && s != "latest" {
		return fmt.Errorf("kafka.start_at: %q is not earliest or latest", s)
	}
	if c.DeadLetterTopic != "" && c.DeadLetterTopic == c.Topic {
		return errors.New("kafka.dead_letter_topic: must differ from kafka.topic")
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" || c.TLS.CertFile == "" && c.TLS.KeyFile != "" {
		return errors.New("kafka.tls: cert_file and key_file go together")
	}
	switch strings.ToUpper(c.SASL.Mechanism) {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASL.Username == "" {
			return fmt.Errorf("kafka.sasl.username: required for %s", c.SASL.Mechanism)
		}
	default:
		return fmt.Errorf("kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
	}
	return nil
}

// tlsConfig builds the client TLS settings, or nil when TLS is off.
func (c TLSConfig) tlsConfig() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no PEM certificates in %s", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// mechanism builds the SASL mechanism, or nil when SASL is off.
func (c SASLConfig) mechanism() (sasl.Mechanism, error) {
	if c.Mechanism == "" {
		return nil, nil
	}
	pass, err := c.password()
	if err != nil {
		return nil, err
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: c.Username, Password: pass}, nil
	case "SCRAM-SHA-256":
		m, err := scram.Mechanism(scram.SHA256, c.Username, pass)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl: %s", scrub(err.Error(), pass))
		}
		return m, nil
	case "SCRAM-SHA-512":
		m, err := scram.Mechanism(scram.SHA512, c.Username, pass)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl: %s", scrub(err.Error(), pass))
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not supported", c.Mechanism)
}

// String shows the SASL settings without the password, so that printing a
// Config (%v, %+v) never reveals it.
func (c SASLConfig) String() string {
	pass := "none"
	switch {
	case c.PasswordFile != "":
		pass = "from " + c.PasswordFile
	case c.Password != "":
		pass = "[redacted]"
	}
	return fmt.Sprintf("{mechanism:%s username:%s password:%s}", c.Mechanism, c.Username, pass)
}

// GoString is String for %#v.
func (c SASLConfig) GoString() string { return "consume.SASLConfig" + c.String() }

// LogValue is String for log/slog.
func (c SASLConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }
