package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// kustomizeModule is the kustomize the tests render with, fetched from the
// Go module proxy and built by `go run` (cached in the Go build cache after
// the first run). The Makefile's deploy-check pins the same version; a test
// below keeps the two equal.
const kustomizeModule = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"

// renderedEnv names a directory holding the rendered kustomizations as
// NAME.yaml (dev.yaml, production.yaml, kafka-topics.yaml), as written by
// `make deploy-check`. Unset, the tests render them with kustomizeModule.
const renderedEnv = "DEPLOY_RENDERED"

// kustomizations are what is rendered: name → directory under kubernetes/.
var kustomizations = map[string]string{
	"dev":          "overlays/dev",
	"production":   "overlays/production",
	"kafka-topics": "kafka-topics",
}

// replicasWanted is the detector count of each overlay.
var replicasWanted = map[string]int{"dev": 1, "production": 3}

var renderCache sync.Map // name → renderResult

type renderResult struct {
	docs []map[string]any
	err  error
}

// rendered returns the documents of a rendered kustomization, from
// $DEPLOY_RENDERED or by running the pinned kustomize. A failure to render
// fails the test: it never skips.
func rendered(t *testing.T, name string) []map[string]any {
	t.Helper()
	if r, ok := renderCache.Load(name); ok {
		res := r.(renderResult)
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.docs
	}
	var b []byte
	var err error
	if dir := os.Getenv(renderedEnv); dir != "" {
		b, err = os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			err = fmt.Errorf("%s=%s: %w (make deploy-check writes it)", renderedEnv, dir, err)
		}
	} else {
		b, err = kustomizeBuild(filepath.Join("kubernetes", kustomizations[name]))
	}
	var docs []map[string]any
	if err == nil {
		docs, err = decodeAll(b)
		if err != nil {
			err = fmt.Errorf("rendered %s: %w", name, err)
		}
	}
	renderCache.Store(name, renderResult{docs, err})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// kustomizeBuild runs `kustomize build dir` with the pinned kustomize.
func kustomizeBuild(dir string) ([]byte, error) {
	cmd := exec.Command("go", "run", kustomizeModule, "build", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s is not set and `go run %s build %s` failed after %v: %w\n%s\n"+
			"(run `make deploy-check`, which renders with the same kustomize, or set %[1]s to a directory of rendered overlays)",
			renderedEnv, kustomizeModule, dir, time.Since(start).Round(time.Millisecond), err, stderr.String())
	}
	return out, nil
}

func byKind(docs []map[string]any, kind string) []map[string]any {
	var out []map[string]any
	for _, d := range docs {
		if getString(d, "kind") == kind {
			out = append(out, d)
		}
	}
	return out
}

func one(t *testing.T, docs []map[string]any, kind string) map[string]any {
	t.Helper()
	ds := byKind(docs, kind)
	if len(ds) != 1 {
		t.Fatalf("%d %s resources, want 1", len(ds), kind)
	}
	return ds[0]
}

func TestKustomizePinMatchesMakefile(t *testing.T) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sigs\.k8s\.io/kustomize/kustomize/v5@\S+`).FindAllString(string(b), -1)
	if len(m) == 0 {
		t.Fatal("Makefile does not pin sigs.k8s.io/kustomize/kustomize/v5")
	}
	for _, s := range m {
		if s != kustomizeModule {
			t.Errorf("Makefile pins %s, the tests %s", s, kustomizeModule)
		}
	}
}

func TestKubernetesOverlays(t *testing.T) {
	for name, want := range replicasWanted {
		t.Run(name, func(t *testing.T) { checkOverlay(t, name, rendered(t, name), want) })
	}
}

func checkOverlay(t *testing.T, name string, docs []map[string]any, replicas int) {
	for _, kind := range []string{"StatefulSet", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor", "ServiceAccount"} {
		if len(byKind(docs, kind)) == 0 {
			t.Errorf("no %s rendered", kind)
		}
	}
	for _, d := range docs {
		if getString(d, "metadata", "namespace") == "" && getString(d, "kind") != "Namespace" {
			t.Errorf("%s %s has no namespace", getString(d, "kind"), getString(d, "metadata", "name"))
		}
	}
	sts := one(t, docs, "StatefulSet")
	spec := getMap(sts, "spec")
	if got := getString(spec, "replicas"); got != strconv.Itoa(replicas) {
		t.Errorf("replicas = %s, want %d", got, replicas)
	}
	podLabels := getMap(spec, "template", "metadata", "labels")
	if sel := getMap(spec, "selector", "matchLabels"); !subset(sel, podLabels) {
		t.Errorf("StatefulSet selector %v does not match its pod labels %v", sel, podLabels)
	}

	// Services: a headless one governing the StatefulSet, and the API.
	services := byKind(docs, "Service")
	var headless, api []map[string]any
	for _, s := range services {
		if !subset(getMap(s, "spec", "selector"), podLabels) {
			t.Errorf("Service %s selects %v, not the detector pods %v", getString(s, "metadata", "name"), getMap(s, "spec", "selector"), podLabels)
		}
		if getString(s, "spec", "clusterIP") == "None" {
			headless = append(headless, s)
		} else {
			api = append(api, s)
		}
	}
	if len(headless) != 1 || len(api) != 1 {
		t.Fatalf("%d headless and %d other Services, want 1 and 1", len(headless), len(api))
	}
	if got, want := getString(spec, "serviceName"), getString(headless[0], "metadata", "name"); got != want {
		t.Errorf("StatefulSet serviceName = %q, want the headless Service %q", got, want)
	}

	// PodDisruptionBudget: one detector at a time.
	pdb := one(t, docs, "PodDisruptionBudget")
	if got := getString(pdb, "spec", "maxUnavailable"); got != "1" {
		t.Errorf("PodDisruptionBudget maxUnavailable = %q, want 1", got)
	}
	if sel := getMap(pdb, "spec", "selector", "matchLabels"); !subset(sel, podLabels) {
		t.Errorf("PodDisruptionBudget selects %v, not the detector pods %v", sel, podLabels)
	}

	// ServiceMonitor: /metrics of the API service only (each pod once).
	sm := one(t, docs, "ServiceMonitor")
	if getString(sm, "apiVersion") != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion = %s", getString(sm, "apiVersion"))
	}
	smSel := getMap(sm, "spec", "selector", "matchLabels")
	var selected []string
	for _, s := range services {
		if subset(smSel, getMap(s, "metadata", "labels")) {
			selected = append(selected, getString(s, "metadata", "name"))
		}
	}
	if len(selected) != 1 || selected[0] != getString(api[0], "metadata", "name") {
		t.Errorf("ServiceMonitor selects Services %v, want only %s", selected, getString(api[0], "metadata", "name"))
	}
	eps := getList(sm, "spec", "endpoints")
	if len(eps) != 1 || getString(eps[0], "path") != "/metrics" || getString(eps[0], "port") != "http" {
		t.Errorf("ServiceMonitor endpoints = %v, want port http path /metrics", eps)
	}
	var apiSecret, apiKey string // where the pods read the API token
	defer func() {
		// /metrics needs the API token: the scrape sends the same Secret's key.
		for _, ep := range eps {
			if getString(ep, "authorization", "type") != "Bearer" || getString(ep, "authorization", "credentials", "name") != apiSecret ||
				getString(ep, "authorization", "credentials", "key") != apiKey || apiSecret == "" {
				t.Errorf("ServiceMonitor endpoint authorization = %v, want Bearer from Secret %s key %s", get(ep, "authorization"), apiSecret, apiKey)
			}
		}
	}()

	// The pod.
	pod := getMap(spec, "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if u := getString(pod, "securityContext", "runAsUser"); u == "" || u == "0" {
		t.Errorf("pod securityContext.runAsUser = %q, want a non-root uid", u)
	}
	if get(pod, "automountServiceAccountToken") != false {
		t.Error("pod mounts a service account token it does not need")
	}
	containers := getList(pod, "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := containers[0]
	if why := imagePinned(getString(c, "image")); why != "" {
		t.Errorf("image %q is not pinned: %s", getString(c, "image"), why)
	}
	checkContainerSecurity(t, c)
	checkProbes(t, c)
	checkResources(t, c)
	if !hasSecretRef(c) {
		t.Error("no Secret is referenced for alert receiver credentials (envFrom secretRef)")
	}
	for _, e := range getList(c, "env") {
		if getString(e, "name") == apiTokenEnv {
			apiSecret, apiKey = getString(e, "valueFrom", "secretKeyRef", "name"), getString(e, "valueFrom", "secretKeyRef", "key")
			if get(e, "valueFrom", "secretKeyRef", "optional") == true {
				t.Errorf("env %s is optional: the detector refuses to start without it, so say so at scheduling", apiTokenEnv)
			}
		}
	}
	if apiSecret == "" || apiKey == "" {
		t.Errorf("env %s does not come from a Secret (secretKeyRef)", apiTokenEnv)
	}

	// Volumes: the generated ConfigMap, the state volume at state_dir, a
	// writable /tmp under the read-only root filesystem.
	mounts := map[string]string{} // mount path → volume name
	for _, m := range getList(c, "volumeMounts") {
		mounts[getString(m, "mountPath")] = getString(m, "name")
	}
	volumes := map[string]map[string]any{}
	for _, v := range getList(pod, "volumes") {
		volumes[getString(v, "name")] = v.(map[string]any)
	}
	cfgVol := volumes[mounts["/etc/causeway"]]
	cmName := getString(cfgVol, "configMap", "name")
	var cm map[string]any
	for _, d := range byKind(docs, "ConfigMap") {
		if getString(d, "metadata", "name") == cmName {
			cm = d
		}
	}
	if cm == nil {
		t.Fatalf("/etc/causeway is not a rendered ConfigMap (volume %v)", cfgVol)
	}
	config := checkDetectorConfig(t, "ConfigMap "+cmName+" causeway.yaml", []byte(getString(cm, "data", "causeway.yaml")))
	stateDir := getString(config, "state_dir")
	stateVol := mounts[stateDir]
	if stateVol == "" {
		t.Fatalf("state_dir %s is not a volume mount", stateDir)
	}
	var claims []string
	for _, vct := range getList(spec, "volumeClaimTemplates") {
		claims = append(claims, getString(vct, "metadata", "name"))
	}
	switch name {
	case "production":
		if !contains(stringsAny(claims), stateVol) {
			t.Errorf("state volume %q is not a volumeClaimTemplate (%v): production state must survive a new pod", stateVol, claims)
		}
	case "dev":
		if get(volumes[stateVol], "emptyDir") == nil {
			t.Errorf("dev state volume %q is not an emptyDir: %v", stateVol, volumes[stateVol])
		}
	}
	if mounts["/tmp"] == "" {
		t.Error("no writable /tmp under the read-only root filesystem")
	}
	port := ""
	for _, p := range getList(c, "ports") {
		if getString(p, "name") == "http" {
			port = getString(p, "containerPort")
		}
	}
	if !strings.HasSuffix(getString(config, "listen"), ":"+port) {
		t.Errorf("listen %s is not the container port http (%s)", getString(config, "listen"), port)
	}
}

func stringsAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func checkContainerSecurity(t *testing.T, c any) {
	t.Helper()
	sc := getMap(c, "securityContext")
	if sc["readOnlyRootFilesystem"] != true {
		t.Error("container readOnlyRootFilesystem is not true")
	}
	if sc["allowPrivilegeEscalation"] != false {
		t.Error("container allowPrivilegeEscalation is not false")
	}
	if !contains(getList(sc, "capabilities", "drop"), "ALL") {
		t.Error("container does not drop ALL capabilities")
	}
	if len(getList(sc, "capabilities", "add")) > 0 {
		t.Errorf("container adds capabilities %v", getList(sc, "capabilities", "add"))
	}
}

func checkProbes(t *testing.T, c any) {
	t.Helper()
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		p := getMap(c, probe)
		if p == nil {
			t.Errorf("no %s", probe)
			continue
		}
		if got := getString(p, "httpGet", "path"); got != path {
			t.Errorf("%s path = %q, want %s", probe, got, path)
		}
		if got := getString(p, "httpGet", "port"); got != "http" && got != "8080" {
			t.Errorf("%s port = %q, want http", probe, got)
		}
	}
}

// TestBaseMemoryLimit: the base's memory limit is the one docs/operations.md
// ("Sizing") derives the default memory budget from, and the one make soak
// holds the detector to (baseManifestLimit in cmd/detector).
func TestBaseMemoryLimit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("kubernetes", "base", "statefulset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := decodeAll(b)
	if err != nil {
		t.Fatal(err)
	}
	containers := getList(getMap(one(t, docs, "StatefulSet"), "spec", "template", "spec"), "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	if lim := getString(containers[0], "resources", "limits", "memory"); lim != "2Gi" {
		t.Errorf("base memory limit %q; the documented budget and make soak assume 2Gi", lim)
	}
}

func checkResources(t *testing.T, c any) {
	t.Helper()
	for _, res := range []string{"cpu", "memory"} {
		req, lim := getString(c, "resources", "requests", res), getString(c, "resources", "limits", res)
		if req == "" || lim == "" {
			t.Errorf("%s request %q, limit %q: both must be set", res, req, lim)
			continue
		}
		r, err1 := quantity(req)
		l, err2 := quantity(lim)
		if err1 != nil || err2 != nil {
			t.Errorf("%s: %v %v", res, err1, err2)
		} else if r > l {
			t.Errorf("%s request %s is above its limit %s", res, req, lim)
		}
	}
}

func hasSecretRef(c any) bool {
	for _, e := range getList(c, "envFrom") {
		if getString(e, "secretRef", "name") != "" {
			return true
		}
	}
	return false
}

// quantity parses the Kubernetes quantities used here: plain numbers,
// millicores (m) and binary sizes (Ki, Mi, Gi, Ti).
func quantity(s string) (float64, error) {
	mult := 1.0
	for suf, m := range map[string]float64{"m": 1e-3, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("quantity %q: %w", s, err)
	}
	return v * mult, nil
}

func TestQuantity(t *testing.T) {
	for s, want := range map[string]float64{"1": 1, "250m": 0.25, "512Mi": 512 << 20, "2Gi": 2 << 30} {
		if got, err := quantity(s); err != nil || got != want {
			t.Errorf("quantity(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := quantity("lots"); err == nil {
		t.Error("quantity(lots) did not fail")
	}
}

func TestKafkaTopics(t *testing.T) {
	docs := rendered(t, "kafka-topics")
	partitions := map[string]int{}
	for _, d := range byKind(docs, "KafkaTopic") {
		name := getString(d, "spec", "topicName")
		n, err := strconv.Atoi(getString(d, "spec", "partitions"))
		if err != nil {
			t.Errorf("KafkaTopic %s: partitions: %v", name, err)
		}
		partitions[name] = n
		if getString(d, "metadata", "labels", "strimzi.io/cluster") == "" {
			t.Errorf("KafkaTopic %s has no strimzi.io/cluster label", name)
		}
	}
	// The topics the production configuration names, all defined.
	var cm map[string]any
	for _, d := range byKind(rendered(t, "production"), "ConfigMap") {
		if getString(d, "data", "causeway.yaml") != "" {
			cm = d
		}
	}
	if cm == nil {
		t.Fatal("no ConfigMap with causeway.yaml in production")
	}
	cfg, _ := detectorConfigProblems([]byte(getString(cm, "data", "causeway.yaml")))
	topics := clusterTopics(cfg)
	for role, topic := range topics {
		if _, ok := partitions[topic]; !ok {
			t.Errorf("%s topic %q has no KafkaTopic (have %v)", role, topic, partitions)
		}
	}
	if n := partitions[topics["leader"]]; n != 1 {
		t.Errorf("leader topic %s has %d partitions, want exactly 1", topics["leader"], n)
	}
	maxReplicas := 0
	for _, n := range replicasWanted {
		maxReplicas = max(maxReplicas, n)
	}
	if n := partitions[topics["spans"]]; n < maxReplicas || n%maxReplicas != 0 {
		t.Errorf("%s has %d partitions: want a multiple of the largest replica count %d", topics["spans"], n, maxReplicas)
	}
	if a, b := partitions[topics["merged"]], partitions[topics["windows"]]; a != b {
		t.Errorf("%s has %d partitions, %s %d: want the same (a shard each)", topics["merged"], a, topics["windows"], b)
	}
	if a, b := partitions[topics["rekey"]], partitions[topics["spans"]]; a != b {
		t.Errorf("%s has %d partitions, %s %d: want the same", topics["rekey"], a, topics["spans"], b)
	}
}
