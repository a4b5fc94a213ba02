package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var metricName = regexp.MustCompile(`causeway_[a-z_]+[a-z]`)

// registeredMetrics returns the causeway_* metric names written as string
// literals in the detector's non-test Go sources.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(causeway_[a-z_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "deploy" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("found only %d causeway_* metrics in the sources", len(names))
	}
	return names
}

// TestAlertRulesUseRealMetrics checks that the PrometheusRule of each
// overlay, and the operator's guide, name only metrics the detector
// registers, so a renamed metric cannot leave an alert that never fires.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	known := registeredMetrics(t)
	for name := range replicasWanted {
		rules := byKind(rendered(t, name), "PrometheusRule")
		if len(rules) != 1 {
			t.Errorf("%s: %d PrometheusRules, want 1", name, len(rules))
			continue
		}
		n := 0
		for _, g := range getList(rules[0], "spec", "groups") {
			for _, r := range getList(g, "rules") {
				for _, m := range metricName.FindAllString(getString(r, "expr"), -1) {
					n++
					if !known[m] {
						t.Errorf("%s: alert %s uses %s, which the detector does not register", name, getString(r, "alert"), m)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: the PrometheusRule uses no causeway_* metric", name)
		}
	}
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	// The guide also names the Kafka topics, which look like metrics.
	cfg, err := os.ReadFile(filepath.Join(composeDir, "causeway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := detectorConfigProblems(cfg)
	topics := map[string]bool{}
	for _, topic := range clusterTopics(conf) {
		topics[topic] = true
	}
	for _, m := range metricName.FindAllString(string(b), -1) {
		if !known[m] && !topics[m] {
			t.Errorf("docs/operations.md names %s, which the detector does not register", m)
		}
	}
}
