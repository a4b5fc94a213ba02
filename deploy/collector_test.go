package deploy

import (
	"net"
	"strings"
	"testing"

	"github.com/causeway/causeway/consume"
)

// TestCollectorConfig checks that the Collector configuration receives OTLP
// and writes what the detector reads by default: topic otlp_spans, OTLP
// protobuf, keyed by trace id.
func TestCollectorConfig(t *testing.T) {
	checkCollector(t, readYAML(t, "collector/collector.yaml"))
}

func checkCollector(t reporter, c map[string]any) {
	t.Helper()
	for proto, port := range map[string]string{"grpc": "4317", "http": "4318"} {
		ep := getString(c, "receivers", "otlp", "protocols", proto, "endpoint")
		if _, p, err := net.SplitHostPort(ep); err != nil || p != port {
			t.Errorf("receivers.otlp.protocols.%s.endpoint = %q, want port %s", proto, ep, port)
		}
	}
	if !hasKey(getMap(c, "processors"), "batch") {
		t.Errorf("no batch processor")
	}
	k := getMap(c, "exporters", "kafka")
	if k == nil {
		t.Fatalf("no kafka exporter")
	}
	if got := getString(k, "traces", "topic"); got != consume.DefaultTopic {
		t.Errorf("exporters.kafka.traces.topic = %q, want %q (the detector's default)", got, consume.DefaultTopic)
	}
	if got := getString(k, "traces", "encoding"); got != string(consume.EncodingProto) {
		t.Errorf("exporters.kafka.traces.encoding = %q, want %q (the detector's default)", got, consume.EncodingProto)
	}
	for _, old := range []string{"topic", "encoding"} {
		if _, ok := k[old]; ok {
			t.Errorf("exporters.kafka.%s is deprecated since v0.124: use traces.%[1]s", old)
		}
	}
	if k["partition_traces_by_id"] != true {
		t.Errorf("exporters.kafka.partition_traces_by_id is not true: the detectors need a trace's spans on one partition")
	}
	if b := stringsOf(getList(k, "brokers")); len(b) == 0 {
		t.Errorf("exporters.kafka.brokers is empty")
	}

	// The traces pipeline wires otlp → … batch … → kafka, and every
	// component it names is defined.
	p := getMap(c, "service", "pipelines", "traces")
	if p == nil {
		t.Fatalf("no service.pipelines.traces")
	}
	for kind, want := range map[string]string{"receivers": "otlp", "processors": "batch", "exporters": "kafka"} {
		names := stringsOf(getList(p, kind))
		found := false
		for _, n := range names {
			if !hasKey(getMap(c, kind), n) {
				t.Errorf("pipeline traces names %s %q, which is not defined", kind, n)
			}
			found = found || n == want || strings.HasPrefix(n, want+"/")
		}
		if !found {
			t.Errorf("pipeline traces %s = %v, want %s among them", kind, names, want)
		}
	}
	procs := stringsOf(getList(p, "processors"))
	if len(procs) > 1 && procs[0] != "memory_limiter" && contains(getList(p, "processors"), "memory_limiter") {
		t.Errorf("memory_limiter should be the first processor, got %v", procs)
	}
	for _, e := range stringsOf(getList(c, "service", "extensions")) {
		if !hasKey(getMap(c, "extensions"), e) {
			t.Errorf("service.extensions names %q, which is not defined", e)
		}
	}
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

func TestCollectorChecksFail(t *testing.T) {
	bad, err := decodeAll([]byte(`
receivers: {otlp: {protocols: {grpc: {endpoint: 0.0.0.0:4317}}}}
exporters: {kafka: {topic: spans, encoding: otlp_json}}
service: {pipelines: {traces: {receivers: [otlp], processors: [batch], exporters: [kafka, debug]}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	runChecks(r, func(rep reporter) { checkCollector(rep, bad[0]) })
	all := strings.Join(r.msgs, "\n")
	for _, want := range []string{"protocols.http", "no batch processor", "traces.topic", "traces.encoding", "deprecated",
		"partition_traces_by_id", "brokers", `processors "batch"`, `exporters "debug"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no failure mentions %q; got:\n%s", want, all)
		}
	}
}
