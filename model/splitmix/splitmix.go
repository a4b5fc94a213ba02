// Package splitmix is SplitMix64, a small deterministic generator whose
// whole state is one uint64: a baseline keeps it in its snapshot, so a
// restored baseline samples exactly as the original would have, and
// clustering seeded from it is repeatable.
package splitmix

// Source is the generator's state; any value is a valid seed.
type Source uint64

// Uint64 returns the next number.
func (s *Source) Uint64() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Float64 returns a number uniform in [0, 1).
func (s *Source) Float64() float64 { return float64(s.Uint64()>>11) / (1 << 53) }
