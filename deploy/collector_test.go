package deploy

import (
	"go/parser"
	"go/token"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

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

// TestCollectorBuildMatchesCheck: the components the Collector build
// manifest (collector/builder-config.yaml, what scripts/collector.sh
// builds) compiles in are the ones deploy/otelcheck validates
// collector.yaml against, so a configuration that passes `make
// deploy-check` starts on the Collector that is built. The build has the
// debug exporter besides, for tests.
func TestCollectorBuildMatchesCheck(t *testing.T) {
	b, err := os.ReadFile("collector/builder-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Only the component lists: dist is a map, and yaml refuses it into
	// a list, so decode each section on its own.
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	built := map[string]bool{}
	for _, kind := range []string{"receivers", "processors", "exporters", "extensions", "connectors"} {
		node, ok := raw[kind]
		if !ok {
			continue
		}
		var list []struct {
			Gomod string `yaml:"gomod"`
		}
		if err := node.Decode(&list); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for _, c := range list {
			path, _, _ := strings.Cut(c.Gomod, " ")
			built[path] = true
		}
	}
	delete(built, "go.opentelemetry.io/collector/exporter/debugexporter")

	f, err := parser.ParseFile(token.NewFileSet(), "otelcheck/main.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	component := regexp.MustCompile(`/(receiver|processor|exporter|extension|connector)/[a-z]+(receiver|processor|exporter|extension|connector)$`)
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); component.MatchString(p) {
			checked[p] = true
		}
	}
	if len(checked) == 0 {
		t.Fatal("no component imports found in otelcheck/main.go")
	}
	for p := range built {
		if !checked[p] {
			t.Errorf("%s is built into the Collector but not in otelcheck's factories", p)
		}
	}
	for p := range checked {
		if !built[p] {
			t.Errorf("otelcheck validates against %s, which the Collector build does not have: a config using it would not start", p)
		}
	}
}
