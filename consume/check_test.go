package consume

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway/causeway/internal/wait"
)

const testSecret = "hunter2-Zq9-not-in-any-output"

// TestPasswordNeverShown: the SASL password, given inline or in a file,
// appears in no printed or logged Config, no configuration error, no
// connection error and no line the consumer logs while the brokers are
// unreachable.
func TestPasswordNeverShown(t *testing.T) {
	passFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(passFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dead := closedPort(t)
	for name, sasl := range map[string]SASLConfig{
		"inline": {Mechanism: "SCRAM-SHA-512", Username: "causeway", Password: testSecret},
		"file":   {Mechanism: "SCRAM-SHA-256", Username: "causeway", PasswordFile: passFile},
		"plain":  {Mechanism: "PLAIN", Username: "causeway", Password: testSecret},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Brokers: []string{dead}, Topic: "spans", SASL: sasl, CommitInterval: 10 * time.Millisecond}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			log.Info("config", "kafka", cfg, "sasl", cfg.SASL)
			slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "kafka", cfg)
			shown := []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg.SASL), cfg.SASL.String()}

			bad := cfg
			bad.SASL.Mechanism = "GSSAPI"
			shown = append(shown, errText(bad.Validate()), errText(cfg.Check(t.Context())))
			_, err := bad.Dialer()
			shown = append(shown, errText(err))

			// A consumer whose brokers are down logs and counts the
			// client's errors; none of them shows the password.
			m := NewMetrics(nil)
			c, err := New(cfg, log, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			wait.For(t, 20*time.Second, 20*time.Millisecond, "the condition", func() bool { return testutil.ToFloat64(m.KafkaErrors) > 0 })
			cancel()
			c.Close()
			<-done
			if !strings.Contains(logs.String(), "kafka reader error") {
				t.Errorf("the client's errors were not logged:\n%s", logs.String())
			}

			shown = append(shown, logs.String())
			for _, s := range shown {
				if strings.Contains(s, testSecret) {
					t.Errorf("password shown in:\n%s", s)
				}
			}
			if fmt.Sprint(cfg.SASL) == fmt.Sprint(SASLConfig{}) {
				t.Errorf("SASL settings print as empty: %s", cfg.SASL)
			}
		})
	}
}

// TestRejectedErrorScrubs: even a client error that quoted the password
// would be shown without it.
func TestRejectedErrorScrubs(t *testing.T) {
	err := &RejectedError{Field: "kafka.sasl", Broker: "b:9093", Hint: "rejected",
		Err: errors.New("server said: bad password " + testSecret), secret: testSecret}
	if got := err.Error(); strings.Contains(got, testSecret) || !strings.HasPrefix(got, "kafka.sasl: broker b:9093 rejected:") {
		t.Errorf("Error() = %q", got)
	}
}

// TestCheckNamesTheSetting: a broker whose certificate the configured CA
// did not sign, and a plaintext listener reached with TLS on, are
// rejections naming the setting; a broker that is down is not.
func TestCheckNamesTheSetting(t *testing.T) {
	dir := t.TempDir()
	brokerCert, _ := selfSigned(t, "broker")
	_, otherPEM := selfSigned(t, "some other CA")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, otherPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{brokerCert}})
	if err != nil {
		t.Fatal(err)
	}
	plainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{tlsLn, plainLn} {
		go serve(ln)
		t.Cleanup(func() { ln.Close() })
	}
	for _, tc := range []struct {
		name, broker, field string
	}{
		{"untrusted CA", tlsLn.Addr().String(), "kafka.tls.ca_file"},
		{"plaintext listener", plainLn.Addr().String(), "kafka.tls.enabled"},
		{"broker down", closedPort(t), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Brokers: []string{tc.broker}, TLS: TLSConfig{Enabled: true, CAFile: caFile},
				SASL: SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "causeway", Password: testSecret}}
			err := cfg.Check(t.Context())
			var rej *RejectedError
			switch {
			case err == nil:
				t.Fatal("Check passed")
			case tc.field == "" && errors.As(err, &rej):
				t.Fatalf("a broker that is down is reported as a rejection: %v", err)
			case tc.field == "" && !strings.HasPrefix(err.Error(), "kafka.brokers: none reachable"):
				t.Fatalf("err = %v", err)
			case tc.field != "" && !errors.As(err, &rej):
				t.Fatalf("err = %v (%T), want a RejectedError", err, err)
			case tc.field != "" && (rej.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": broker "+tc.broker)):
				t.Fatalf("err = %v, want it to name %s and the broker", err, tc.field)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("password in %v", err)
			}
			t.Log(err)
		})
	}
}

// serve answers every connection with bytes that are neither TLS nor
// Kafka, after the TLS handshake if ln is a TLS listener.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("HTTP/1.0 400 not kafka\r\n\r\n"))
			c.Read(make([]byte, 1))
		}()
	}
}

func selfSigned(t *testing.T, cn string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestCheckDeadLetter: a dead-letter topic whose max.message.bytes is
// below what the consumer reads is named with the setting to raise; one
// that takes them, a topic not created yet and no topic at all give no
// warning.
func TestCheckDeadLetter(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	create := func(topic, limit string) {
		conn, err := kafka.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: limit}}}); err != nil {
			t.Fatal(err)
		}
	}
	create("small_dlq", "1000000")
	create("large_dlq", "20000000")
	for topic, want := range map[string]string{"small_dlq": "raise the topic's max.message.bytes", "large_dlq": "", "not_yet": "", "": ""} {
		cfg := Config{Brokers: []string{addr}, Topic: "spans", DeadLetterTopic: topic, MaxMessageBytes: 16 << 20}
		got, err := cfg.CheckDeadLetter(t.Context())
		if err != nil {
			t.Errorf("%q: %v", topic, err)
			continue
		}
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("%q: warning %q, want %q", topic, got, want)
		}
	}
}
