package deploy

import (
	"bytes"
	"fmt"
	"net"
	"path"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/consume"
	"github.com/causeway/causeway/graph"
)

// detectorKeys are the top-level keys of the detector's YAML configuration
// (cmd/detector/config.go), plus cluster, the scale-out block.
var detectorKeys = map[string]bool{
	"listen": true, "log_level": true, "pprof": true, "kafka": true, "graph": true, "idle_advance": true,
	"state_dir": true, "snapshot_interval": true, "alerts": true, "demo": true, "cluster": true, "api": true,
}

// apiKeys are the keys of the detector's api block (cmd/detector/apiconfig.go).
var apiKeys = []string{"token", "tls", "tls.cert_file", "tls.key_file", "read_header_timeout", "read_timeout",
	"write_timeout", "idle_timeout", "max_header_bytes", "max_body_bytes"}

// apiTokenEnv is the variable the deployments pass the API token in.
const apiTokenEnv = "CAUSEWAY_API_TOKEN"

// detectorConfigProblems checks a causeway.yaml meant for a detector in a
// container in cluster mode. It returns the configuration decoded and what
// is wrong with it. The kafka, graph and alerts blocks are checked with the
// detector's own types and validation; the cluster block by its documented
// keys only, so the check does not depend on the Go type behind it.
func detectorConfigProblems(b []byte) (map[string]any, []string) {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	docs, err := decodeAll(b)
	if err != nil || len(docs) != 1 {
		return nil, []string{fmt.Sprintf("want one YAML document: %v", err)}
	}
	c := docs[0]
	for k := range c {
		if !detectorKeys[k] {
			bad("unknown top-level key %q", k)
		}
	}
	if got := getString(c, "listen"); got != "0.0.0.0:8080" {
		bad("listen = %q, want 0.0.0.0:8080 (reachable from outside the container)", got)
	}
	// Reachable from outside the container: the API must require a token,
	// read from the variable the deployments set from a Secret.
	if got := getString(c, "api", "token", "env"); got != apiTokenEnv {
		bad("api.token = %v, want {env: %s}: the detector refuses to listen on 0.0.0.0 without a token", get(c, "api", "token"), apiTokenEnv)
	}
	if sd := getString(c, "state_dir"); !path.IsAbs(sd) {
		bad("state_dir = %q, want an absolute path on a volume", sd)
	}

	brokers := getList(c, "kafka", "brokers")
	if len(brokers) == 0 {
		bad("kafka.brokers is empty")
	}
	for _, br := range stringsOf(brokers) {
		if _, _, err := net.SplitHostPort(br); err != nil {
			bad("kafka.brokers: %q: %v", br, err)
		}
	}
	if got := getString(c, "kafka", "topic"); got != consume.DefaultTopic {
		bad("kafka.topic = %q, want %q (what the Collector writes)", got, consume.DefaultTopic)
	}
	if got := getString(c, "kafka", "encoding"); got != string(consume.EncodingProto) {
		bad("kafka.encoding = %q, want %q", got, consume.EncodingProto)
	}
	if get(c, "kafka", "trace_keyed") != true {
		bad("kafka.trace_keyed should be true: the Collector config partitions traces by id")
	}
	var kc consume.Config
	if err := decodeBlock(c, "kafka", &kc, false); err != nil { // not strict: trace_keyed comes with cluster mode
		bad("%v", err)
	} else if err := kc.WithDefaults().Validate(); err != nil {
		bad("%v", err)
	}
	var gc graph.Config
	if err := decodeBlock(c, "graph", &gc, true); err != nil {
		bad("%v", err)
	} else if err := gc.Validate(); err != nil {
		bad("%v", err)
	}
	var ac alert.Config
	if err := decodeBlock(c, "alerts", &ac, true); err != nil {
		bad("%v", err)
	} else if err := ac.Resolve(func(string) string { return "from-the-environment" }); err != nil {
		bad("%v", err)
	}

	if get(c, "cluster", "enabled") != true {
		bad("cluster.enabled should be true")
	}
	for _, k := range []string{"windows_topic", "merged_topic", "leader_topic", "rekey_topic", "max_window_wait"} {
		if getString(c, "cluster", k) == "" {
			bad("cluster.%s is not set", k)
		}
	}
	return c, probs
}

// checkDetectorConfig fails t with every problem of the configuration.
func checkDetectorConfig(t *testing.T, name string, b []byte) map[string]any {
	t.Helper()
	c, probs := detectorConfigProblems(b)
	for _, p := range probs {
		t.Errorf("%s: %s", name, p)
	}
	if c == nil {
		t.FailNow()
	}
	return c
}

// decodeBlock re-encodes c[key] and decodes it into v, refusing unknown
// fields when strict. A missing block leaves v zero.
func decodeBlock(c map[string]any, key string, v any, strict bool) error {
	sub, ok := c[key]
	if !ok {
		return nil
	}
	b, err := yaml.Marshal(sub)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// clusterTopics returns the Kafka topics a detector configuration names,
// by role.
func clusterTopics(c map[string]any) map[string]string {
	return map[string]string{
		"spans":   getString(c, "kafka", "topic"),
		"windows": getString(c, "cluster", "windows_topic"),
		"merged":  getString(c, "cluster", "merged_topic"),
		"leader":  getString(c, "cluster", "leader_topic"),
		"rekey":   getString(c, "cluster", "rekey_topic"),
	}
}

func TestDetectorConfigProblems(t *testing.T) {
	// The check must be able to fail: each mistake here is reported.
	bad := []byte(`listen: 127.0.0.1:8080
api: {token: inline}
state_dir: relative
kafak: {}
kafka: {brokers: [kafka], topic: spans, encoding: otlp_json}
graph: {window: -1s}
alerts: {receivers: [{name: x, kind: carrier-pigeon}]}
cluster: {enabled: false}
`)
	_, probs := detectorConfigProblems(bad)
	all := strings.Join(probs, "\n")
	for _, want := range []string{"listen", "api.token", "state_dir", `"kafak"`, "kafka.brokers", "kafka.topic", "kafka.encoding",
		"trace_keyed", "graph", "carrier-pigeon", "cluster.enabled", "cluster.leader_topic"} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem mentions %s; problems:\n%s", want, all)
		}
	}
}
