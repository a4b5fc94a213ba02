package metrictest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "c"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "v_total", Help: "v"}, []string{"result", "kind"})
	reg.MustRegister(c, g, v)
	c.Add(3)
	g.Set(-2.5)
	v.WithLabelValues("ok", "a").Add(7)
	v.WithLabelValues("failed", "a").Add(1)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c_total", nil, 3},
		{"g", nil, -2.5},
		{"v_total", []string{"result", "ok"}, 7},
		{"v_total", []string{"result", "failed", "kind", "a"}, 1},
	} {
		if got := Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s %q = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
