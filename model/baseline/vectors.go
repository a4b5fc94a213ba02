package baseline

import (
	"math"

	"github.com/x448/float16"
)

// vectors holds feature vectors in half-precision floats: a baseline keeps
// Sample past windows and Recent latest ones for every edge and operation,
// and at float32 those were two thirds of a tracked edge's memory
// (BenchmarkScaleSteady). Half precision keeps 11 significant bits, a
// relative step of 1/2048: on log-scale features (latency, rate, whose
// values are logarithms already) under 0.4% of the latency even at an hour,
// a tenth of the narrowest spread a regime may have (MinSpread). A linear
// feature (error ratio, client-server gap in ms, which may be negative or
// far beyond half precision's 65,504) is stored as its inverse hyperbolic
// sine: exact near zero and logarithmic beyond, so a gap of a second is
// kept within 0.2% (2 ms), one of a minute within 0.4%, and an hour's queue
// lag still fits. The conversion is
// github.com/x448/float16's (MIT), rounding to nearest.
type vectors struct {
	c *codec // the Config's, shared
	v []float16.Float16
}

// codec says how each feature of a configuration is stored.
type codec struct {
	linear []bool // per feature: stored through asinh
}

func newCodec(features []Feature) *codec {
	c := &codec{linear: make([]bool, len(features))}
	for d, f := range features {
		c.linear[d] = f.Scale == Linear
	}
	return c
}

func (c *codec) pack(d int, x float64) float16.Float16 {
	if c.linear[d] {
		x = math.Asinh(x)
	}
	return float16.Fromfloat32(float32(x))
}

func (c *codec) unpack(d int, h float16.Float16) float64 {
	x := float64(h.Float32())
	if c.linear[d] {
		x = math.Sinh(x)
	}
	return x
}

// newVectors returns n zero vectors with room for capacity in all.
func newVectors(c *codec, n, capacity int) vectors {
	dims := len(c.linear)
	return vectors{c: c, v: make([]float16.Float16, n*dims, max(n, capacity)*dims)}
}

func (vs *vectors) dims() int { return len(vs.c.linear) }

// len is how many vectors are held.
func (vs *vectors) len() int { return len(vs.v) / vs.dims() }

// push appends x.
func (vs *vectors) push(x []float64) {
	for d, v := range x {
		vs.v = append(vs.v, vs.c.pack(d, v))
	}
}

// set replaces vector i with x.
func (vs *vectors) set(i int, x []float64) {
	for d, v := range x {
		vs.v[i*vs.dims()+d] = vs.c.pack(d, v)
	}
}

// at returns feature d of vector i.
func (vs *vectors) at(i, d int) float64 { return vs.c.unpack(d, vs.v[i*vs.dims()+d]) }

// row decodes vector i into dst (of length dims) and returns it.
func (vs *vectors) row(i int, dst []float64) []float64 {
	for d := range dst {
		dst[d] = vs.at(i, d)
	}
	return dst
}

// float32s returns every value, for snapshots. Storing them back with
// setFloat32s gives the same half-precision values: each is within a
// float32 rounding of one.
func (vs *vectors) float32s() []float32 {
	if len(vs.v) == 0 {
		return nil
	}
	out := make([]float32, len(vs.v))
	for i, h := range vs.v {
		out[i] = float32(vs.c.unpack(i%vs.dims(), h))
	}
	return out
}

// setFloat32s replaces the contents with values as float32s returns them.
func (vs *vectors) setFloat32s(values []float32, capacity int) {
	vs.v = make([]float16.Float16, len(values), max(len(values), capacity*vs.dims()))
	for i, x := range values {
		vs.v[i] = vs.c.pack(i%vs.dims(), float64(x))
	}
}
