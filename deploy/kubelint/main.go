// Command kubelint decodes rendered Kubernetes manifests strictly into the
// API types of k8s.io/api (and the Prometheus Operator's for ServiceMonitor),
// so a misspelt or misplaced field, which the API server would reject or
// silently drop, fails `make deploy-check` here, without a cluster.
// PrometheusRule expressions are parsed as PromQL. Kinds
// without Go types (Strimzi's KafkaTopic) are listed as not checked; the
// tests in deploy/ check those structurally.
//
// It is its own module so that the detector's go.mod does not carry the
// Kubernetes API modules.
//
//	go -C deploy/kubelint run . FILE.yaml...
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to a new value of its Go type.
var kinds = map[string]func() any{
	"apps/v1/StatefulSet":           func() any { return new(appsv1.StatefulSet) },
	"apps/v1/Deployment":            func() any { return new(appsv1.Deployment) },
	"v1/Service":                    func() any { return new(corev1.Service) },
	"v1/ConfigMap":                  func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                     func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":             func() any { return new(corev1.ServiceAccount) },
	"policy/v1/PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
	// The Prometheus Operator's types, from its small API-only module.
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubelint FILE.yaml...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		if err := lintFile(path, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "kubelint: %v\n", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// lintFile checks every document of the file at path and reports each to w.
// It returns the problems of all documents joined.
func lintFile(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var errs []error
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		what, checked, err := lintDoc(doc)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, what, err))
		case checked:
			fmt.Fprintf(w, "ok          %s: %s\n", path, what)
		default:
			fmt.Fprintf(w, "not checked %s: %s (no Go type here)\n", path, what)
		}
	}
	return errors.Join(errs...)
}

// lintDoc decodes one YAML document strictly into its API type. It returns
// "apiVersion/kind name" and whether the kind has a type to check against.
func lintDoc(doc []byte) (what string, checked bool, err error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "document", false, err
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return "document", false, err
	}
	what = meta.APIVersion + "/" + meta.Kind + " " + meta.Metadata.Name
	if meta.APIVersion == "" || meta.Kind == "" || meta.Metadata.Name == "" {
		return what, false, errors.New("apiVersion, kind and metadata.name are required")
	}
	mk, ok := kinds[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return what, false, nil
	}
	v := mk()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return what, true, err
	}
	if pr, ok := v.(*monitoringv1.PrometheusRule); ok {
		return what, true, checkRules(pr)
	}
	return what, true, nil
}
