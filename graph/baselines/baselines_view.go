package baselines

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/model/baseline"
)

// Num is a number that encodes NaN (a missing value) as JSON null.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(f*1000)/1000, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*n = Num(f)
	return err
}

// SeriesView is one baseline as the API shows it: its regimes and recent
// windows in the units people read, and the latest verdict.
type SeriesView struct {
	Source    string          `json:"source,omitempty"`
	Target    string          `json:"target,omitempty"`
	Service   string          `json:"service,omitempty"`
	Operation string          `json:"operation"`
	Features  []string        `json:"features"`
	Units     []string        `json:"units"`
	Regimes   []RegimeView    `json:"regimes"`
	Recent    []WindowView    `json:"recent_windows"`
	Latest    *baseline.Score `json:"latest,omitempty"`
	LatestAt  time.Time       `json:"latest_window_start"`
}

// RegimeView is one regime: centroid and a band of ±2 spreads around it,
// each in shown units.
type RegimeView struct {
	Name     string `json:"name"`
	Weight   Num    `json:"weight"`
	Centroid []Num  `json:"centroid"`
	Low      []Num  `json:"band_low"`
	High     []Num  `json:"band_high"`
}

// WindowView is one recent window with its score.
type WindowView struct {
	Start     time.Time `json:"start"`
	Values    []Num     `json:"values"`
	Score     Num       `json:"score"`
	Anomalous bool      `json:"anomalous"`
}

func shown(f baseline.Feature, v float64) float64 {
	if f.Scale == baseline.Log {
		v = math.Exp(v)
	}
	if f.Percent {
		v *= 100
	}
	return v
}

func viewOf(cfg *baseline.Config, s *series) SeriesView {
	feats := cfg.Features
	v := SeriesView{LatestAt: s.at}
	for _, f := range feats {
		v.Features = append(v.Features, f.Name)
		v.Units = append(v.Units, f.Unit)
	}
	for _, r := range s.b.Regimes() {
		rv := RegimeView{Name: r.Name, Weight: Num(r.Weight)}
		for d, f := range feats {
			c, sp := r.Centroid[d], r.Spread[d]
			rv.Centroid = append(rv.Centroid, Num(shown(f, c)))
			rv.Low = append(rv.Low, Num(shown(f, c-2*sp)))
			rv.High = append(rv.High, Num(shown(f, c+2*sp)))
		}
		v.Regimes = append(v.Regimes, rv)
	}
	for _, w := range s.b.Recent() {
		wv := WindowView{Start: time.Unix(0, w.At).UTC(), Score: Num(w.Score), Anomalous: w.Anomalous}
		for d, f := range feats {
			wv.Values = append(wv.Values, Num(shown(f, w.Values[d])))
		}
		v.Recent = append(v.Recent, wv)
	}
	last := s.last
	v.Latest = &last
	return v
}

// EdgeBaselines returns the baselines of every operation of the edge from
// source to target (one operation when operation is not empty), sorted by
// operation; nil when there is none.
func (bs *Baselines) EdgeBaselines(source, target, operation string) []SeriesView {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	var out []SeriesView
	for _, k := range graph.SortedKeys(bs.edges, graph.CompareEdge) {
		if k.Source != source || k.Target != target || operation != "" && k.Operation != operation {
			continue
		}
		v := viewOf(bs.edgeCfg, bs.edges[k])
		v.Source, v.Target, v.Operation = k.Source, k.Target, k.Operation
		out = append(out, v)
	}
	return out
}

// OpBaselines returns the baselines of a service's operations.
func (bs *Baselines) OpBaselines(service string) []SeriesView {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	var out []SeriesView
	for _, k := range graph.SortedKeys(bs.ops, graph.CompareOp) {
		if k.Service != service {
			continue
		}
		v := viewOf(bs.opCfg, bs.ops[k])
		v.Service, v.Operation = k.Service, k.Operation
		out = append(out, v)
	}
	return out
}

// Len returns how many edge and operation baselines exist.
func (bs *Baselines) Len() (edges, ops int) {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	return len(bs.edges), len(bs.ops)
}
