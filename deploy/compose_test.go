package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// composeDir is where compose.yaml lives; relative bind mounts and build
// contexts are resolved against it.
const composeDir = "compose"

// notHere are bind-mount sources made elsewhere: the plugin's build output
// and Grafana provisioning (deploy/grafana, written with the plugin).
var notHere = []string{"grafana-plugin/dist", "deploy/grafana/"}

func TestCompose(t *testing.T) {
	checkCompose(t, readYAML(t, filepath.Join(composeDir, "compose.yaml")))
}

func checkCompose(t reporter, c map[string]any) {
	t.Helper()
	services := getMap(c, "services")
	for _, want := range []string{"kafka", "collector", "grafana", "alertmanager"} {
		if services[want] == nil {
			t.Errorf("no %s service", want)
		}
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var detectors []string
	for name, s := range services {
		img := getString(s, "image")
		if img == "" {
			t.Errorf("service %s has no image", name)
		} else if why := imagePinned(img); why != "" {
			t.Errorf("service %s: image %s is not pinned: %s", name, img, why)
		}
		for _, p := range stringsOf(getList(s, "ports")) {
			if host, _, _ := strings.Cut(p, ":"); net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
				t.Errorf("service %s publishes %q beyond 127.0.0.1", name, p)
			}
		}
		for _, v := range stringsOf(getList(s, "volumes")) {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if !hasKey(getMap(c, "volumes"), src) {
					t.Errorf("service %s mounts volume %q, which is not declared", name, src)
				}
				continue
			}
			abs := filepath.Join(repo, "deploy", composeDir, src)
			rel, _ := filepath.Rel(repo, abs)
			rel = filepath.ToSlash(rel)
			if madeElsewhere(rel) {
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("service %s mounts %s: %v", name, rel, err)
			}
		}
		if b := getMap(s, "build"); b != nil {
			ctx := filepath.Join(repo, "deploy", composeDir, getString(b, "context"))
			if _, err := os.Stat(filepath.Join(ctx, getString(b, "dockerfile"))); err != nil {
				t.Errorf("service %s builds with %v", name, err)
			}
			if strings.HasSuffix(getString(b, "dockerfile"), "deploy/docker/Dockerfile") {
				detectors = append(detectors, name)
			}
		}
	}

	if len(detectors) < 2 {
		t.Errorf("detector services %v: want two replicas built from deploy/docker/Dockerfile", detectors)
	}
	for _, name := range detectors {
		s := services[name]
		if u := getString(s, "user"); u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
			t.Errorf("detector %s runs as user %q, want non-root", name, u)
		}
		if get(s, "read_only") != true {
			t.Errorf("detector %s: read_only is not true", name)
		}
		var cfg string
		for _, v := range stringsOf(getList(s, "volumes")) {
			if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/etc/causeway/causeway.yaml") {
				cfg = src
			}
		}
		if cfg == "" {
			t.Errorf("detector %s does not mount /etc/causeway/causeway.yaml", name)
			continue
		}
		b, err := os.ReadFile(filepath.Join(composeDir, cfg))
		if err != nil {
			t.Errorf("detector %s: %v", name, err)
			continue
		}
		if getString(s, "environment", apiTokenEnv) == "" {
			t.Errorf("detector %s: no %s in its environment: it would refuse to start", name, apiTokenEnv)
		}
		conf, probs := detectorConfigProblems(b)
		for _, p := range probs {
			t.Errorf("detector %s config %s: %s", name, cfg, p)
		}
		// Brokers and alert receivers are services of this stack.
		for _, br := range stringsOf(getList(conf, "kafka", "brokers")) {
			if host, _, _ := net.SplitHostPort(br); services[host] == nil {
				t.Errorf("detector %s: broker %s is not a service of the stack", name, br)
			}
		}
		am := false
		for _, r := range getList(conf, "alerts", "receivers") {
			if getString(r, "kind") == "alertmanager" {
				am = true
				host := regexp.MustCompile(`^https?://([^:/]+)`).FindStringSubmatch(getString(r, "url"))
				if host == nil || services[host[1]] == nil {
					t.Errorf("detector %s: Alertmanager receiver %s is not a service of the stack", name, getString(r, "url"))
				}
			}
		}
		if !am {
			t.Errorf("detector %s sends no alerts to Alertmanager", name)
		}
		checkComposeTopics(t, services, conf, len(detectors))
	}

	if got := getString(services["grafana"], "environment", apiTokenEnv); !strings.Contains(got, "${"+apiTokenEnv) {
		t.Errorf("grafana %s = %q: the provisioned data source reads the detectors' token from it", apiTokenEnv, got)
	}
	if got := getString(services["grafana"], "environment", "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"); got != "causeway-rootcause-datasource" {
		t.Errorf("grafana GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS = %q", got)
	}
	if !mounts(services["grafana"], "grafana-plugin/dist", "/var/lib/grafana/plugins/causeway-rootcause-datasource") {
		t.Errorf("grafana does not mount grafana-plugin/dist as the causeway-rootcause-datasource plugin")
	}
	if !mounts(services["grafana"], "deploy/grafana/provisioning", "/etc/grafana/provisioning") {
		t.Errorf("grafana does not mount deploy/grafana/provisioning at /etc/grafana/provisioning")
	}
	if !mounts(services["collector"], "deploy/collector/collector.yaml", "/etc/otelcol-contrib/config.yaml") {
		t.Errorf("the collector does not run with deploy/collector/collector.yaml")
	}
}

// mounts reports whether service s bind-mounts the repository path src
// (relative to the repository root) at dst.
func mounts(s any, src, dst string) bool {
	for _, v := range stringsOf(getList(s, "volumes")) {
		f := strings.Split(v, ":")
		if len(f) >= 2 && f[1] == dst && filepath.ToSlash(filepath.Join("deploy", composeDir, f[0])) == src {
			return true
		}
	}
	return false
}

// checkComposeTopics checks that the kafka-topics service creates every
// topic the detector configuration names, the leader topic with one
// partition and the span topics with a partition for every detector.
func checkComposeTopics(t reporter, services map[string]any, conf map[string]any, detectors int) {
	t.Helper()
	script := strings.Join(stringsOf(getList(services["kafka-topics"], "command")), "\n")
	partitions := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*t (\S+) (\d+)`).FindAllStringSubmatch(script, -1) {
		partitions[m[1]], _ = strconv.Atoi(m[2])
	}
	topics := clusterTopics(conf)
	for role, topic := range topics {
		if _, ok := partitions[topic]; !ok {
			t.Errorf("kafka-topics does not create the %s topic %q (creates %v)", role, topic, partitions)
		}
	}
	if n := partitions[topics["leader"]]; n != 1 {
		t.Errorf("leader topic %s gets %d partitions, want 1", topics["leader"], n)
	}
	if n := partitions[topics["spans"]]; n < detectors {
		t.Errorf("%s gets %d partitions for %d detectors", topics["spans"], n, detectors)
	}
}

func madeElsewhere(rel string) bool {
	for _, p := range notHere {
		if rel == strings.TrimSuffix(p, "/") || strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

func TestComposeChecksFail(t *testing.T) {
	bad, err := decodeAll([]byte(`
services:
  kafka: {image: "apache/kafka", ports: ["9092:9092"]}
  detector:
    build: {context: ../.., dockerfile: deploy/docker/Dockerfile}
    image: causeway/detector:dev
    volumes: [./missing.yaml:/etc/causeway/causeway.yaml:ro, state:/var/lib/causeway]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	runChecks(r, func(rep reporter) { checkCompose(rep, bad[0]) })
	all := strings.Join(r.msgs, "\n")
	for _, want := range []string{"no collector service", "apache/kafka is not pinned", `"9092:9092" beyond 127.0.0.1`,
		`volume "state", which is not declared`, "want two replicas", "runs as user", "read_only", "missing.yaml"} {
		if !strings.Contains(all, want) {
			t.Errorf("no failure mentions %q; got:\n%s", want, all)
		}
	}
}
