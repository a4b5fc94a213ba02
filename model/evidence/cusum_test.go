package evidence

import (
	"math"
	"testing"
)

func TestEffective(t *testing.T) {
	for _, tc := range []struct{ n, rho, want float64 }{
		{0, 0.2, 0},
		{1, 0.2, 1},
		{5, 0, 5},
		{5, 0.2, 5 / 1.8},
		{1e6, 0.2, 5}, // tends to 1/rho
	} {
		if got := Effective(tc.n, tc.rho); math.Abs(got-tc.want) > 1e-3 {
			t.Errorf("Effective(%g, %g) = %g, want %g", tc.n, tc.rho, got, tc.want)
		}
	}
}

func TestLLR(t *testing.T) {
	p0, p1 := []float64{0.9, 0.1}, []float64{0.5, 0.5}
	// One call in the second category: log(0.5/0.1).
	if got, want := LLR([]float64{0, 1}, p0, p1, 0.3), math.Log(5); math.Abs(got-want) > 1e-12 {
		t.Errorf("one hit: %g, want %g", got, want)
	}
	// Calls as the reference expects them lower the statistic.
	if got := LLR([]float64{9, 1}, p0, p1, 0); got >= 0 {
		t.Errorf("calls as usual: %g, want negative", got)
	}
	// A busy window counts as its effective sample, not its calls.
	one := LLR([]float64{0, 1}, p0, p1, 0.2)
	many := LLR([]float64{0, 1000}, p0, p1, 0.2)
	if many > 5.01*one {
		t.Errorf("1000 calls weigh %g, one %g: more than 1/rho calls' worth", many, one)
	}
	if got := LLR([]float64{0, 0}, p0, p1, 0.2); got != 0 {
		t.Errorf("no calls: %g", got)
	}
}

func TestCUSUM(t *testing.T) {
	var c CUSUM
	if c.Step(-1, 10, 1, 0, 0) || c.S != 0 || c.Start != 0 {
		t.Fatalf("negative evidence started a run: %+v", c)
	}
	c.Step(2, 20, 3, 2, 1)
	c.Step(3, 30, 4, 4, 0)
	if c.S != 5 || c.Start != 20 || c.Windows != 2 || c.Calls != 7 || c.Hits != 6 || c.Far != 1 {
		t.Fatalf("after two windows: %+v", c)
	}
	if c.Step(-6, 40, 10, 0, 0) || c != (CUSUM{}) {
		t.Fatalf("the statistic back at zero must end the run: %+v", c)
	}
	c.Step(1, 50, 1, 1, 0)
	if c.Start != 50 || c.Calls != 1 {
		t.Fatalf("a new run starts afresh: %+v", c)
	}
	c.Reset()
	if c != (CUSUM{}) {
		t.Fatalf("Reset: %+v", c)
	}
}
