package main

import (
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// checkRules parses every expression of a PrometheusRule as PromQL and
// every "for" as a Prometheus duration, as the Prometheus Operator's
// admission webhook would, and requires each alert to carry a severity
// label and a summary.
func checkRules(pr *monitoringv1.PrometheusRule) error {
	p := parser.NewParser(parser.Options{})
	for _, g := range pr.Spec.Groups {
		if len(g.Rules) == 0 {
			return fmt.Errorf("group %s has no rules", g.Name)
		}
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if _, err := p.ParseExpr(r.Expr.String()); err != nil {
				return fmt.Errorf("group %s rule %s: expr: %w", g.Name, name, err)
			}
			if r.For != nil {
				if _, err := model.ParseDuration(string(*r.For)); err != nil {
					return fmt.Errorf("group %s rule %s: for: %w", g.Name, name, err)
				}
			}
			if r.Alert != "" && (r.Labels["severity"] == "" || r.Annotations["summary"] == "") {
				return fmt.Errorf("group %s alert %s: needs a severity label and a summary annotation", g.Name, name)
			}
		}
	}
	return nil
}
