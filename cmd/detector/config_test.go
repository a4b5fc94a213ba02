package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigUnknownKeys: a mistyped key is named with its line, the
// closest valid key and the keys valid at that place, at any depth.
func TestConfigUnknownKeys(t *testing.T) {
	var c Config
	err := c.decode([]byte("listne: 127.0.0.1:9\nkafka:\n  topik: spans\n  zzzzzzzz: 1\n"), "causeway.yaml")
	if err == nil {
		t.Fatal("typos accepted")
	}
	for _, want := range []string{
		`config causeway.yaml: line 1: unknown key "listne" (did you mean "listen"?); valid here: `,
		`line 3: unknown key "topik" (did you mean "topic"?); valid here: brokers,`,
		`line 4: unknown key "zzzzzzzz"; valid here: brokers,`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
	if d := editDistance("listne", "listen"); d != 2 {
		t.Errorf("edit distance listne/listen %d, want 2", d)
	}
}

func TestRunFlagsAndConfigErrors(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nonsense"}, "listen"},
		{[]string{"--brokers", "localhost"}, "kafka.brokers"},
		{[]string{"--brokers", "h:1", "--encoding", "xml"}, "kafka.encoding"},
		{[]string{"--config", "testdata/typo.yaml"}, `line 2: unknown key "windw" (did you mean "window"?)`},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--config", "testdata/inline-secret.yaml"}, "line 5: a secret is read from {env: NAME} or {file: PATH}, never written inline"},
	} {
		_, err := parseRunFlags(tc.args, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseRunFlags(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	cfg, err := parseRunFlags([]string{"--config", "testdata/good.yaml", "--topic", "from_flag"},
		func(k string) string { return map[string]string{"CAUSEWAY_KAFKA_GROUP": "from_env"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Topic != "from_flag" || cfg.Kafka.GroupID != "from_env" || cfg.Graph.Window != 30*time.Second || len(cfg.Kafka.Brokers) != 2 {
		t.Errorf("config %+v: want flag over env over file", cfg)
	}
}
