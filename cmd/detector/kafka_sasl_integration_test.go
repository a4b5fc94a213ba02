//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/internal/syncbuf"
	"github.com/causeway/causeway/internal/wait"
)

// TestIntegrationKafkaSASLSSL: spans produced over SASL_SSL reach the
// detector reading over SASL_SSL, with SCRAM-SHA-512 and SCRAM-SHA-256,
// and the edges they describe appear; a bad message goes to the
// dead-letter topic through the same secured connection. A wrong password
// and a CA that did not sign the broker's certificate each stop the
// detector at start with an error naming the setting and never the
// password.
func TestIntegrationKafkaSASLSSL(t *testing.T) {
	bs := brokers(t)
	env := saslBroker(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := "it_sasl_" + suffix
	createReadyTopic(t, bs, topic, 2)

	// Produced through the secured listener too: Transport carries TLS and
	// SCRAM for writers as Dialer does for readers.
	prodCfg := env.kafkaConfig("SCRAM-SHA-512", topic)
	tr, err := prodCfg.Transport()
	if err != nil {
		t.Fatal(err)
	}
	const traces = 30
	// Event time from 90 s ago to now, so the windows before the newest
	// spans close and the edges are served.
	msgs := traceMessages(t, 0, traces, time.Now().Add(-90*time.Second), 3*time.Second)
	msgs = append(msgs[:10:10], append([]kafka.Message{{Value: []byte("not \xff protobuf")}}, msgs[10:]...)...)
	produceMessages(t, tr, env.brokers, topic, msgs...)

	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Listen = "127.0.0.1:0"
			cfg.Kafka = env.kafkaConfig(mech, topic)
			cfg.Kafka.DeadLetterTopic = topic + "_dlq_" + strings.ToLower(mech[len("SCRAM-"):])
			_, addr, stop := startMain(t, cfg)
			defer stop()
			waitMetric(t, addr, "causeway_spans_total", traces*spansPerTrace)
			waitMetric(t, addr, "causeway_consume_commits_total", traces+1)
			waitMetric(t, addr, `causeway_consume_dead_letter_total{result="ok"}`, 1)
			if got := scrape(t, addr, `causeway_consume_errors_total{reason="not_protobuf"}`); got != 1 {
				t.Errorf("errors{not_protobuf} = %v, want 1", got)
			}
			wait.Report(t, 30*time.Second, 100*time.Millisecond, "edge frontend→cartservice served", func() (bool, string) {
				n := edgeRequests(t, addr, "frontend", "cartservice")
				return n > 0, fmt.Sprint(n, " requests")
			})
		})
	}

	password, err := os.ReadFile(env.passwordFile)
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong-password")
	const wrongPassword = "not-the-password-4711"
	if err := os.WriteFile(wrong, []byte(wrongPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*consume.Config)
		field string
	}{
		{"wrong password", func(c *consume.Config) { c.SASL.PasswordFile = wrong }, "kafka.sasl"},
		{"wrong password inline", func(c *consume.Config) { c.SASL.PasswordFile, c.SASL.Password = "", wrongPassword }, "kafka.sasl"},
		{"untrusted CA", func(c *consume.Config) { c.TLS.CAFile = env.otherCA }, "kafka.tls.ca_file"},
		{"unknown mechanism on the listener", func(c *consume.Config) { c.SASL.Mechanism = "PLAIN" }, "kafka.sasl.mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Listen = "127.0.0.1:0"
			cfg.Kafka = env.kafkaConfig("SCRAM-SHA-512", topic)
			tc.edit(&cfg.Kafka)
			var logs syncbuf.Buffer
			m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := m.Run(ctx)
			var rej *consume.RejectedError
			if !errors.As(err, &rej) || rej.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": broker "+env.brokers[0]) {
				t.Fatalf("Run = %v; want a rejection naming %s and the broker", err, tc.field)
			}
			t.Logf("Run: %v", err)
			for _, secret := range []string{wrongPassword, strings.TrimSpace(string(password))} {
				if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("a password shows in the error or the log:\n%v\n%s", err, logs.String())
				}
			}
		})
	}
}

// saslEnv is the SASL_SSL listener scripts/integration.sh starts beside
// the plaintext one: SCRAM users over TLS with a throwaway CA.
type saslEnv struct {
	brokers            []string
	caFile, otherCA    string
	user, passwordFile string
}

func saslBroker(t *testing.T) saslEnv {
	t.Helper()
	e := saslEnv{caFile: os.Getenv("KAFKA_TLS_CA_FILE"), otherCA: os.Getenv("KAFKA_TLS_OTHER_CA_FILE"),
		user: os.Getenv("KAFKA_SCRAM_USER"), passwordFile: os.Getenv("KAFKA_SCRAM_PASSWORD_FILE")}
	if b := os.Getenv("KAFKA_SASL_BROKERS"); b != "" {
		e.brokers = strings.Split(b, ",")
	}
	if e.brokers == nil || e.caFile == "" || e.otherCA == "" || e.user == "" || e.passwordFile == "" {
		t.Fatal("KAFKA_SASL_BROKERS, KAFKA_TLS_CA_FILE, KAFKA_TLS_OTHER_CA_FILE, KAFKA_SCRAM_USER or KAFKA_SCRAM_PASSWORD_FILE " +
			"is not set: run through scripts/integration.sh (make integration)")
	}
	return e
}

// kafkaConfig is the detector's Kafka settings for this listener.
func (e saslEnv) kafkaConfig(mechanism, topic string) consume.Config {
	return consume.Config{Brokers: e.brokers, Topic: topic, GroupID: "it_" + topic + "_" + mechanism,
		CommitInterval: 50 * time.Millisecond,
		TLS:            consume.TLSConfig{Enabled: true, CAFile: e.caFile},
		SASL:           consume.SASLConfig{Mechanism: mechanism, Username: e.user, PasswordFile: e.passwordFile}}
}

// edgeRequests is the calls since start on src→dst served by /api/v1/graph.
func edgeRequests(t *testing.T, addr, src, dst string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/graph")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s graph.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Edges {
		if e.Source == src && e.Target == dst {
			return e.Total.Requests
		}
	}
	return 0
}
