//go:build integration

package consume

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestIntegrationRedeliversUnapplied: against a real broker, messages read
// but never marked applied come back to the next member of the group, and
// nothing applied does.
func TestIntegrationRedeliversUnapplied(t *testing.T) {
	env := os.Getenv("KAFKA_BROKERS")
	if env == "" {
		t.Fatal("KAFKA_BROKERS is not set: run through scripts/integration.sh (make integration)")
	}
	brokers := strings.Split(env, ",")
	topic := "it_redeliver_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := conn.Controller()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatal(err)
	}
	err = cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1})
	cc.Close()
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Transport: &kafka.Transport{}, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	for i := range 6 {
		msgs = append(msgs, kafka.Message{Value: marshal(t, request(byte(i+1), fmt.Sprintf("svc%d", i), 1))})
	}
	if err := w.WriteMessages(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	cfg := Config{Brokers: brokers, Topic: topic, GroupID: topic, CommitInterval: 10 * time.Millisecond}
	consumeN(t, cfg, NewMetrics(nil), 6, 4) // apply four, then "crash"
	spans := consumeN(t, cfg, NewMetrics(nil), 2, 2)
	if spans[0].Service != "svc4" || spans[1].Service != "svc5" {
		t.Fatalf("redelivered %s, %s; want svc4, svc5", spans[0].Service, spans[1].Service)
	}
}
