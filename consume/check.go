package consume

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// RejectedError is a failure to connect that retrying cannot cure: the
// brokers refused this detector's TLS or SASL settings, or it refused
// theirs. Field names the setting to look at. Its message never holds the
// SASL password.
type RejectedError struct {
	Field  string // e.g. kafka.tls.ca_file, kafka.sasl
	Broker string // host:port
	Hint   string // what the setting says, in words
	Err    error  // as the client reported it

	secret string // scrubbed from Err's text
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s: broker %s %s: %s", e.Field, e.Broker, e.Hint, scrub(e.Err.Error(), e.secret))
}

func (e *RejectedError) Unwrap() error { return e.Err }

// Check connects to each bootstrap broker once with c's TLS and SASL
// settings, and returns nil as soon as one accepts them. It returns a
// *RejectedError when a broker rejects the settings (a certificate the
// configured CA does not vouch for, a listener that does not speak TLS,
// credentials or a mechanism the broker refuses), and another error when no
// broker could be reached at all, which may cure itself: the reader keeps
// retrying. Each attempt is bounded by ctx and 10 s.
func (c Config) Check(ctx context.Context) error {
	d, err := c.Dialer()
	if err != nil {
		return err
	}
	secret, _ := c.SASL.password() // already read by Dialer
	var unreachable []error
	for _, b := range c.Brokers {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := d.DialContext(dctx, "tcp", b)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if rej := c.classify(b, err, secret); rej != nil {
			return rej
		}
		unreachable = append(unreachable, errors.New(scrub(err.Error(), secret)))
	}
	return fmt.Errorf("kafka.brokers: none reachable: %w", errors.Join(unreachable...))
}

// classify returns the RejectedError err is, or nil for a failure that
// may pass (a broker down or unreachable).
func (c Config) classify(broker string, err error, secret string) *RejectedError {
	rej := &RejectedError{Broker: broker, Err: err, secret: secret}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		kerr      kafka.Error
	)
	roots := "the system roots"
	if c.TLS.CAFile != "" {
		roots = c.TLS.CAFile
	}
	switch {
	case errors.As(err, &hostname):
		rej.Field, rej.Hint = "kafka.tls.server_name", "presented a certificate for another name"
	case errors.As(err, &unknownCA):
		rej.Field, rej.Hint = "kafka.tls.ca_file", "presented a certificate not signed by a CA in "+roots
	case errors.As(err, &invalid):
		rej.Field, rej.Hint = "kafka.tls.ca_file", "presented a certificate that is not valid (expired, or not for serving)"
	case errors.As(err, &verify):
		rej.Field, rej.Hint = "kafka.tls.ca_file", "presented a certificate that does not verify against "+roots
	case errors.As(err, &header):
		rej.Field, rej.Hint = "kafka.tls.enabled", "did not answer in TLS (a plaintext listener?)"
	case errors.As(err, &kerr) && kerr == kafka.SASLAuthenticationFailed:
		rej.Field, rej.Hint = "kafka.sasl", fmt.Sprintf("rejected user %q with %s (check kafka.sasl.username and the password)",
			c.SASL.Username, strings.ToUpper(c.SASL.Mechanism))
	case errors.As(err, &kerr) && (kerr == kafka.UnsupportedSASLMechanism || kerr == kafka.IllegalSASLState):
		rej.Field, rej.Hint = "kafka.sasl.mechanism", fmt.Sprintf("does not accept %s on this listener", strings.ToUpper(c.SASL.Mechanism))
	case c.TLS.Enabled && strings.Contains(err.Error(), "remote error: tls: "):
		rej.Field, rej.Hint = "kafka.tls", "refused the TLS handshake (a client certificate it wants: kafka.tls.cert_file?)"
	default:
		return nil
	}
	return rej
}

// password is the SASL password: Password, or the content of PasswordFile.
func (c SASLConfig) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafka.sasl.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// scrub replaces every occurrence of secret in s. No client library is
// known to quote a password in an error, but the guarantee that ours never
// do should not rest on that.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// deadLetterOverhead is what a dead-letter copy adds to the message it
// copies: the headers naming the reason and the source.
const deadLetterOverhead = 512

// CheckDeadLetter compares the dead-letter topic's max.message.bytes with
// the largest message the consumer reads: a poison message larger than the
// topic accepts cannot be copied there (each such copy fails and is
// counted). It returns a warning to log, "" when the topic takes them or
// none is set; err is the failure to ask (a topic that does not exist yet
// is not one: it is created with the broker's default on the first copy).
func (c Config) CheckDeadLetter(ctx context.Context) (warning string, err error) {
	if c.DeadLetterTopic == "" {
		return "", nil
	}
	tr, err := c.Transport()
	if err != nil {
		return "", err
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	v, found, err := TopicConfig(ctx, cl, c.DeadLetterTopic, "max.message.bytes")
	switch {
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("kafka.dead_letter_topic %s: describe: %w", c.DeadLetterTopic, err)
	case !found:
		return "", nil
	}
	limit, perr := strconv.Atoi(v)
	if perr == nil && limit < c.MaxMessageBytes+deadLetterOverhead {
		return fmt.Sprintf("kafka.dead_letter_topic %s accepts messages up to %d bytes (its max.message.bytes) but kafka.max_message_bytes is %d: a larger poison message cannot be copied there; raise the topic's max.message.bytes to %d",
			c.DeadLetterTopic, limit, c.MaxMessageBytes, c.MaxMessageBytes+deadLetterOverhead), nil
	}
	return "", nil
}

// TopicConfig reads one of a topic's configs through c: its value, and
// whether the brokers listed it. A topic that does not exist is an error
// that errors.Is kafka.UnknownTopicOrPartition.
func TopicConfig(ctx context.Context, c *kafka.Client, topic, name string) (value string, found bool, err error) {
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name}}}})
	if err != nil {
		return "", false, err
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return "", false, r.Error
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue, true, nil
			}
		}
	}
	return "", false, nil
}
