package baseline

// ring keeps the latest windows a baseline saw, with their scores, in
// fixed memory.
type ring struct {
	at     []int64
	values vectors // one per slot
	score  []float32
	anom   []bool
	next   int // slot of the next push
	full   bool
}

func newRing(size int, c *codec) *ring {
	return &ring{at: make([]int64, size), values: newVectors(c, size, size),
		score: make([]float32, size), anom: make([]bool, size)}
}

func (r *ring) push(at int64, x []float64, score float64, anomalous bool) {
	i := r.next
	r.at[i], r.score[i], r.anom[i] = at, float32(score), anomalous
	r.values.set(i, x)
	r.next = (i + 1) % len(r.at)
	r.full = r.full || r.next == 0
}

// Recent is one recent window of a baseline.
type Recent struct {
	At        int64     `json:"at"` // the caller's window time (Unix ns)
	Values    []float64 `json:"values"`
	Score     float64   `json:"score"`
	Anomalous bool      `json:"anomalous"`
}

// Recent returns the latest windows, oldest first, values in feature units.
func (b *Baseline) Recent() []Recent {
	r := b.recent
	n, start := r.next, 0
	if r.full {
		n, start = len(r.at), r.next
	}
	out := make([]Recent, 0, n)
	for k := range n {
		i := (start + k) % len(r.at)
		v := r.values.row(i, make([]float64, b.dims))
		out = append(out, Recent{At: r.at[i], Values: v, Score: float64(r.score[i]), Anomalous: r.anom[i]})
	}
	return out
}
