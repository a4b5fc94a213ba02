package splitmix

import "testing"

// TestKnownValues: the first outputs from seed 0 are SplitMix64's
// published sequence, so snapshots written before this package keep
// sampling the same way.
func TestKnownValues(t *testing.T) {
	var s Source
	for i, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := s.Uint64(); got != want {
			t.Fatalf("output %d: %#x, want %#x", i, got, want)
		}
	}
	for range 1000 {
		if f := s.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64 %g outside [0, 1)", f)
		}
	}
}
