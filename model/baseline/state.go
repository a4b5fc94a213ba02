package baseline

import (
	"fmt"
	"slices"

	"github.com/causeway/causeway/model/splitmix"
)

// State is everything a Baseline has learned, for snapshots. Restoring it
// gives a baseline that scores and learns exactly as the original would
// have from that point.
type State struct {
	Sample     []float32 `json:"sample"`
	Seen       int64     `json:"seen"`
	Regimes    []Regime  `json:"regimes"`
	SinceFit   int       `json:"since_fit"`
	RNG        uint64    `json:"rng"`
	Run        int       `json:"run"`
	RunSum     float64   `json:"run_sum"`
	Calm       int       `json:"calm"`
	Active     bool      `json:"active"`
	Seq        int64     `json:"seq"`
	RunStart   int64     `json:"run_start"`
	Recent     ringState `json:"recent"`
	Quarantine ringState `json:"quarantine"`
}

type ringState struct {
	At     []int64   `json:"at"`
	Values []float32 `json:"values"`
	Score  []float32 `json:"score"`
	Anom   []bool    `json:"anomalous"`
	Next   int       `json:"next"`
	Full   bool      `json:"full"`
}

// State returns a copy of what b has learned.
func (b *Baseline) State() State {
	return State{
		Sample: b.sample.float32s(), Seen: b.seen, Regimes: b.Regimes(), SinceFit: b.sinceFit,
		RNG: uint64(b.rng), Run: b.run, RunSum: b.runSum, Calm: b.calm, Active: b.active,
		Seq: b.seq, RunStart: b.runStart, Recent: b.recent.state(), Quarantine: b.quarantine.state(),
	}
}

func (r *ring) state() ringState {
	if r == nil {
		return ringState{}
	}
	return ringState{At: slices.Clone(r.at), Values: r.values.float32s(), Score: slices.Clone(r.score),
		Anom: slices.Clone(r.anom), Next: r.next, Full: r.full}
}

func (rs ringState) ring(size int, c *codec, what string) (*ring, error) {
	dims := len(c.linear)
	if len(rs.At) == 0 && len(rs.Values) == 0 && rs.Next == 0 && !rs.Full {
		return nil, nil // never used
	}
	if len(rs.At) != size || len(rs.Values) != size*dims || len(rs.Score) != size || len(rs.Anom) != size || rs.Next < 0 || rs.Next >= size {
		return nil, fmt.Errorf("baseline: %s do not fit %d slots of %d features", what, size, dims)
	}
	r := &ring{at: slices.Clone(rs.At), values: vectors{c: c}, score: slices.Clone(rs.Score),
		anom: slices.Clone(rs.Anom), next: rs.Next, full: rs.Full}
	r.values.setFloat32s(rs.Values, size)
	return r, nil
}

// Restore rebuilds a baseline from a State taken with the same features.
// A state from a configuration with other features, or other sample or
// recent sizes, is an error: start afresh rather than misread it.
func Restore(cfg *Config, s State) (*Baseline, error) {
	cfg.defaults()
	d := len(cfg.Features)
	if len(s.Sample)%d != 0 || len(s.Sample)/d > cfg.Sample {
		return nil, fmt.Errorf("baseline: sample of %d values does not fit %d features", len(s.Sample), d)
	}
	for _, r := range s.Regimes {
		if len(r.Centroid) != d || len(r.Spread) != d {
			return nil, fmt.Errorf("baseline: regime %q has %d dimensions, want %d", r.Name, len(r.Centroid), d)
		}
	}
	recent, err := s.Recent.ring(cfg.Recent, cfg.codec, "recent windows")
	if err != nil {
		return nil, err
	}
	quarantine, err := s.Quarantine.ring(quarantineSize, cfg.codec, "quarantined windows")
	if err != nil {
		return nil, err
	}
	b := New(cfg, s.RNG)
	if len(s.Sample) > 0 {
		b.sample.setFloat32s(s.Sample, cfg.Sample)
	}
	b.seen, b.sinceFit, b.rng = s.Seen, s.SinceFit, splitmix.Source(s.RNG)
	b.run, b.runSum, b.calm, b.active = s.Run, s.RunSum, s.Calm, s.Active
	for _, r := range s.Regimes {
		b.regimes = append(b.regimes, Regime{Name: r.Name, Centroid: slices.Clone(r.Centroid), Spread: slices.Clone(r.Spread), Weight: r.Weight})
	}
	if recent == nil {
		recent = newRing(cfg.Recent, cfg.codec)
	}
	b.seq, b.runStart, b.recent, b.quarantine = s.Seq, s.RunStart, recent, quarantine
	return b, nil
}
