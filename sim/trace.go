package sim

import "encoding/binary"

// rec is one generated span before encoding: ids, times, and pointers to
// its shared template and its instance.
type rec struct {
	trace      [16]byte
	id, parent [8]byte
	start, end int64 // Unix nanoseconds
	t          *tmpl
	inst       *instance
	seq        uint64 // the trace's sequence number
}

// Timing constants of the simulated processes, in nanoseconds.
const (
	deadline   = 3e9   // every client gives up after 3 s (DEADLINE_EXCEEDED)
	pauseProb  = 0.004 // share of spans hit by a pause (GC, CPU throttling, cold cache)
	traceSigma = 0.25  // spread of a per-request slowness shared by all its spans (busy node, cold connection)
	stagger    = 10e3  // parallel calls start 10-30 µs apart
	between    = 30e3  // up to 30 µs of caller code between sequential calls
	loadEffect = 0.25  // latency rises 25% of the relative rise in request rate
)

// Distributions shared by every call.
func gapOut() lognormal     { return lognormal{Median: 120e3, Sigma: 0.4} } // client start → server start
func gapIn() lognormal      { return lognormal{Median: 80e3, Sigma: 0.4} }  // server end → client end
func refused() lognormal    { return ms(0.8, 0.6) }                         // a call to a dead callee
func queueLag() lognormal   { return ms(3, 0.8) }                           // producer end → consumer start
func slowJitter() lognormal { return lognormal{Median: 1, Sigma: 0.1} }     // spread of a slow_db delay
func pause() lognormal      { return ms(10, 0.7) }                          // see pauseProb

// gen generates the spans of one trace at a time into recs.
type gen struct {
	r     rng
	trace [16]byte
	seq   uint64
	load  float64 // latency multiplier: the request rate, and this request's luck
	busy  float64 // extra latency multiplier on the batch job's path
	recs  []rec
}

// id returns a fresh non-zero span id.
func (g *gen) id() [8]byte {
	var id [8]byte
	for id == ([8]byte{}) {
		binary.BigEndian.PutUint64(id[:], g.r.Uint64())
	}
	return id
}

func (g *gen) emit(t *tmpl, inst *instance, id, parent [8]byte, start, end int64) {
	g.recs = append(g.recs, rec{trace: g.trace, id: id, parent: parent, start: start, end: end,
		t: t, inst: inst, seq: g.seq})
}

// traceOf generates trace number seq: a request of root, or with a nil
// root one drawn from the traffic mix, starting at start, with every span it
// causes. load multiplies all latencies, busy those on the batch job's path.
func (g *gen) traceOf(m *model, seed int64, seq uint64, start int64, load, busy float64, root *op) {
	g.r = newRNG(seed, seq)
	g.seq = seq
	g.busy = busy
	g.load = load * lognormal{Median: 1, Sigma: traceSigma}.sample(&g.r)
	g.trace = [16]byte{}
	for g.trace == ([16]byte{}) {
		binary.BigEndian.PutUint64(g.trace[:8], g.r.Uint64())
		binary.BigEndian.PutUint64(g.trace[8:], g.r.Uint64())
	}
	o := root
	if o == nil {
		x := g.r.Float64() * m.weights
		o = m.roots[len(m.roots)-1].op
		for _, r := range m.roots {
			if x < r.weight {
				o = r.op
				break
			}
			x -= r.weight
		}
	}
	inst := o.svc.insts[g.r.IntN(len(o.svc.insts))]
	g.run(o, inst, g.id(), [8]byte{}, start)
}

// selfTime draws the self time of one execution of o.
func (g *gen) selfTime(o *op) float64 {
	load := g.load
	if o.svc.jobPath {
		load *= g.busy
	}
	d := o.self.sample(&g.r) * load
	if g.r.Float64() < pauseProb {
		d += pause().sample(&g.r)
	}
	return d
}

// run records one execution of o on inst as span id, child of parent,
// starting at start, with everything it calls. Self time is spread over the
// gaps before, between and after its calls; a latency fault adds to the
// first gap. A failing operation stops at a random point of its body; a
// failed required call stops it too. It returns the span's end and outcome.
func (g *gen) run(o *op, inst *instance, id, parent [8]byte, start int64) (int64, outcome) {
	self := g.selfTime(o)
	n := len(o.steps)
	fail := g.r.Float64() < o.errRate
	if len(o.errors) > 0 {
		if p := fracAt(o.errors, start); p > 0 && g.r.Float64() < p {
			fail = true
		}
	}
	cut := n
	if fail {
		cut = g.r.IntN(n + 1)
	}
	first := self * (0.2 + 0.3*g.r.Float64())
	chunk := (self - first) / float64(n+1)
	t := start + int64(first+delayAt(o.latency, start))
	out := outOK
	for i := 0; i < cut && out == outOK; i++ {
		st := &o.steps[i]
		if st.prob == 0 || g.r.Float64() < st.prob {
			t, out = g.step(st, inst, id, t)
		}
		t += int64(chunk * (0.5 + g.r.Float64()))
	}
	t += int64(chunk * (0.5 + g.r.Float64()))
	if fail {
		out = outInternal
	}
	g.emit(o.tmpl[out], inst, id, parent, start, t)
	return t, out
}

// step runs one stage of an operation body starting at t and returns when it
// ends and whether a required call failed.
func (g *gen) step(st *step, inst *instance, parent [8]byte, t int64) (int64, outcome) {
	reps := 1
	if st.max > 0 {
		reps = st.min + g.r.IntN(st.max-st.min+1)
	}
	for range reps {
		if st.parallel {
			end, failed := t, false
			for j, c := range st.calls {
				e, out := g.call(c, inst, parent, t+int64(float64(j)*stagger*(1+2*g.r.Float64())))
				end = max(end, e)
				failed = failed || (out != outOK && !c.optional)
			}
			t = end
			if failed {
				return t, outInternal
			}
			continue
		}
		for _, c := range st.calls {
			e, out := g.call(c, inst, parent, t)
			t = e + int64(between*g.r.Float64())
			if out != outOK && !c.optional {
				return t, outInternal
			}
		}
	}
	return t, outOK
}

// call makes call c from inst at t as a child of parent.
func (g *gen) call(c *call, inst *instance, parent [8]byte, t int64) (int64, outcome) {
	switch c.kind {
	case callLocal:
		return g.run(c.to, inst, g.id(), parent, t)
	case callRPC:
		return g.rpc(c, inst, parent, t)
	case callLeaf:
		return g.leaf(c, inst, parent, t)
	}
	return g.publish(c, inst, parent, t)
}

// pick chooses the callee instance, or reports the callee unreachable. A
// dead_instance fault with fraction f < 1 kills the service's first instance
// and sends that share of calls to it; the others reach the live ones.
func (g *gen) pick(s *service, t int64) (*instance, bool) {
	insts := s.insts
	if len(s.dead) > 0 {
		if p := fracAt(s.dead, t); p > 0 {
			if g.r.Float64() < p {
				return nil, false
			}
			if len(insts) > 1 {
				insts = insts[1:]
			}
		}
	}
	return insts[g.r.IntN(len(insts))], true
}

// rpc records a client span around the callee's server span, separated by
// a network gap each way (plus any network_delay fault on the edge).
func (g *gen) rpc(c *call, inst *instance, parent [8]byte, t int64) (int64, outcome) {
	cid := g.id()
	callee, ok := g.pick(c.to.svc, t)
	if !ok {
		end := t + int64(refused().sample(&g.r))
		g.emit(c.tmpl[outUnavailable], inst, cid, parent, t, end)
		return end, outUnavailable
	}
	half := delayAt(c.delay, t) / 2
	sEnd, out := g.run(c.to, callee, g.id(), cid, t+int64(gapOut().sample(&g.r)+half))
	end := sEnd + int64(gapIn().sample(&g.r)+half)
	if end-t > deadline {
		end, out = t+deadline, outDeadline
	}
	g.emit(c.tmpl[out], inst, cid, parent, t, end)
	return end, out
}

// leaf records a client span to an uninstrumented peer.
func (g *gen) leaf(c *call, inst *instance, parent [8]byte, t int64) (int64, outcome) {
	id := g.id()
	p := c.peer
	if len(p.dead) > 0 {
		if f := fracAt(p.dead, t); f > 0 && g.r.Float64() < f {
			end := t + int64(refused().sample(&g.r))
			g.emit(c.tmpl[outUnavailable], inst, id, parent, t, end)
			return end, outUnavailable
		}
	}
	load := g.load
	if p.jobPath {
		load *= g.busy
	}
	d := c.leaf.lat.sample(&g.r)*load + delayAt(c.delay, t)
	if len(p.slow) > 0 {
		if s := delayAt(p.slow, t); s > 0 {
			d += s * slowJitter().sample(&g.r)
		}
	}
	out := outOK
	if g.r.Float64() < c.leaf.errRate {
		out = outInternal
	}
	if d > deadline {
		d, out = deadline, outDeadline
	}
	g.emit(c.tmpl[out], inst, id, parent, t, t+int64(d))
	return t + int64(d), out
}

// publish records a producer span; the consumer's span, a child of it in
// another service, starts after a queue lag and does not hold the caller.
// A dead consumer leaves the message unconsumed.
func (g *gen) publish(c *call, inst *instance, parent [8]byte, t int64) (int64, outcome) {
	pid := g.id()
	end := t + int64(c.leaf.lat.sample(&g.r))
	g.emit(c.tmpl[outOK], inst, pid, parent, t, end)
	if consumer, ok := g.pick(c.to.svc, t); ok {
		lag := queueLag().sample(&g.r) + delayAt(c.delay, t)
		g.run(c.to, consumer, g.id(), pid, end+int64(lag))
	}
	return end, outOK
}
