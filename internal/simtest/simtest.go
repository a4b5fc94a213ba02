// Package simtest builds the simulator for tests: a configuration with
// faults written as `detector run --fault` reads them.
package simtest

import (
	"testing"

	"github.com/causeway/causeway/sim"
)

// New returns a simulator of cfg whose faults are the given ones (cfg's
// own are replaced; none leaves them), failing the test on a bad fault or
// configuration.
func New(t testing.TB, cfg sim.Config, faults ...string) *sim.Sim {
	t.Helper()
	if len(faults) > 0 {
		cfg.Faults = nil
		for _, spec := range faults {
			f, err := sim.ParseFault(spec)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Faults = append(cfg.Faults, f)
		}
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
