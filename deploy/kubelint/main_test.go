package main

import (
	"strings"
	"testing"
)

func TestLintDoc(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		checked   bool
		err       string
	}{
		{"good", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{name: http, port: 8080, targetPort: http}]\n", true, ""},
		{"misspelt field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  port: [{port: 8080}]\n", true, `unknown field "port"`},
		{"wrong type", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {maxUnavailable: [1]}\n", true, "cannot unmarshal"},
		{"bad quantity", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: c, resources: {requests: {cpu: lots}}}]\n", true, "quantities must match"},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nkind: ConfigMap\nmetadata: {name: c}\n", false, "already set"},
		{"no name", "apiVersion: v1\nkind: ConfigMap\n", false, "metadata.name"},
		{"servicemonitor", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec:\n  endpoints: [{port: http, paths: /metrics}]\n", true, `unknown field "paths"`},
		{"rule", "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m]) > 0', for: 5m, labels: {severity: warning}, annotations: {summary: s}}]}]\n", true, ""},
		{"bad promql", "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m] > 0', labels: {severity: warning}, annotations: {summary: s}}]}]\n", true, "expr"},
		{"no severity", "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups: [{name: g, rules: [{alert: A, expr: 'up == 0', annotations: {summary: s}}]}]\n", true, "severity"},
		{"other kind", "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata: {name: t}\nspec: {anything: 1}\n", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, checked, err := lintDoc([]byte(tc.doc))
			if checked != tc.checked {
				t.Errorf("checked = %v, want %v", checked, tc.checked)
			}
			if tc.err == "" && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}
