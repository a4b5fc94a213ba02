package baseline

import (
	"fmt"
	"slices"
)

// State is everything a Baseline has learned, for snapshots. Restoring it
// gives a baseline that scores and learns exactly as the original would
// have from that point.
type State struct {
	Sample   []float32 `json:"sample"`
	Seen     int64     `json:"seen"`
	Regimes  []Regime  `json:"regimes"`
	SinceFit int       `json:"since_fit"`
	RNG      uint64    `json:"rng"`
	Run      int       `json:"run"`
	Calm     int       `json:"calm"`
	Active   bool      `json:"active"`
	Recent   ringState `json:"recent"`
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
		Sample: slices.Clone(b.sample), Seen: b.seen, Regimes: b.Regimes(), SinceFit: b.sinceFit,
		RNG: b.rng, Run: b.run, Calm: b.calm, Active: b.active,
		Recent: ringState{At: slices.Clone(b.recent.at), Values: slices.Clone(b.recent.values),
			Score: slices.Clone(b.recent.score), Anom: slices.Clone(b.recent.anom), Next: b.recent.next, Full: b.recent.full},
	}
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
	rs := s.Recent
	if len(rs.At) != cfg.Recent || len(rs.Values) != cfg.Recent*d || len(rs.Score) != cfg.Recent || len(rs.Anom) != cfg.Recent || rs.Next < 0 || rs.Next >= cfg.Recent {
		return nil, fmt.Errorf("baseline: recent windows do not fit %d slots of %d features", cfg.Recent, d)
	}
	b := New(cfg, s.RNG)
	b.sample, b.seen, b.sinceFit, b.rng = slices.Clone(s.Sample), s.Seen, s.SinceFit, s.RNG
	b.run, b.calm, b.active = s.Run, s.Calm, s.Active
	for _, r := range s.Regimes {
		b.regimes = append(b.regimes, Regime{Name: r.Name, Centroid: slices.Clone(r.Centroid), Spread: slices.Clone(r.Spread), Weight: r.Weight})
	}
	b.recent = &ring{dims: d, at: slices.Clone(rs.At), values: slices.Clone(rs.Values), score: slices.Clone(rs.Score),
		anom: slices.Clone(rs.Anom), next: rs.Next, full: rs.Full}
	return b, nil
}
