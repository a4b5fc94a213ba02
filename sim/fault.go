package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// FaultKind names a kind of injectable fault.
type FaultKind string

// Fault kinds.
const (
	// Latency adds Delay of self time to every server (or consumer) span
	// of the Target service, or of one Operation. Callers slow down by the
	// same amount, up to their 3 s deadline: a call that takes longer ends
	// there with status ERROR and gRPC DEADLINE_EXCEEDED (4) while its
	// server span runs on.
	Latency FaultKind = "latency"
	// Errors makes a Fraction of the Target service's operations (or of one
	// Operation) fail: status ERROR, gRPC INTERNAL (13) or HTTP 500. A
	// failing operation stops at a random point of its work; callers that
	// need the result fail too, up to the user-facing request.
	Errors FaultKind = "errors"
	// SlowDB adds about Delay (±10%) to every call to the Target database
	// or cache (catalog-db, redis-cart).
	SlowDB FaultKind = "slow_db"
	// NetworkDelay adds Delay on the edge from the Target service to the
	// Callee: client spans get longer by Delay (half each way), server
	// spans are unchanged. On the kafka edge the queue lag grows instead.
	NetworkDelay FaultKind = "network_delay"
	// DeadInstance makes the Target service or peer unreachable: callers'
	// client spans fail fast with status ERROR and gRPC UNAVAILABLE (14),
	// and no server span or subtree exists. With Fraction in (0, 1) only
	// the first instance is dead and that share of calls still reaches it.
	DeadInstance FaultKind = "dead_instance"
)

// FaultKinds lists the fault kinds for messages and help.
const FaultKinds = "latency, errors, slow_db, network_delay, dead_instance"

func (k FaultKind) valid() bool {
	switch k {
	case Latency, Errors, SlowDB, NetworkDelay, DeadInstance:
		return true
	}
	return false
}

// Fault is one injected fault: what it hits, how much, and when.
type Fault struct {
	Kind FaultKind
	// Target is what the fault hits: a service (latency, errors,
	// dead_instance), a database or cache (slow_db), an uninstrumented peer
	// (dead_instance), or the calling service of an edge (network_delay).
	Target string
	// Callee is the called service or peer of a network_delay edge.
	Callee string
	// Operation limits latency and errors to one operation of Target, by
	// span name or gRPC method name; empty means all.
	Operation string
	// Delay is the added time of latency, slow_db and network_delay.
	Delay time.Duration
	// Fraction is the share of failing calls for errors (in (0, 1]) and
	// for dead_instance (0 means 1: the whole service is dead).
	Fraction float64
	// Start is when the fault begins, as an offset from Config.Start.
	Start time.Duration
	// Duration is how long it lasts; 0 means until the simulation ends.
	Duration time.Duration
}

// ParseFault parses a fault written as
//
//	KIND:TARGET[:VALUE][@START[/DURATION]]
//
// KIND is latency, errors, slow_db, network_delay or dead_instance. TARGET is
// a service, optionally with #OPERATION for latency and errors
// ("checkoutservice#PlaceOrder"); a database for slow_db ("catalog-db",
// "redis-cart"); a service or uninstrumented peer for dead_instance; and
// CALLER>CALLEE for network_delay ("frontend>cartservice", also "->"; quote
// it in a shell). VALUE is a duration for latency, slow_db and network_delay
// ("+200ms", the plus is optional), a fraction or percentage for errors
// ("0.3", "30%") and optionally dead_instance. START and DURATION are Go
// durations; START defaults to 0, and without DURATION the fault lasts to the
// end. Examples:
//
//	latency:paymentservice:+200ms@60s/2m
//	errors:checkoutservice#PlaceOrder:25%@1m/30s
//	slow_db:catalog-db:+20ms@40s
//	network_delay:frontend>cartservice:+30ms@40s/1m
//	dead_instance:cartservice@2m/1m
//
// ParseFault checks syntax only; New checks names against the topology.
func ParseFault(s string) (Fault, error) {
	f, err := parseFault(s)
	if err != nil {
		return Fault{}, fmt.Errorf("parse fault %q: %w", s, err)
	}
	return f, nil
}

func parseFault(s string) (Fault, error) {
	var f Fault
	spec := s
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		spec = s[:at]
		when := s[at+1:]
		start, dur, hasDur := strings.Cut(when, "/")
		var err error
		if f.Start, err = parseDuration(start); err != nil {
			return f, fmt.Errorf("start: %w", err)
		}
		if hasDur {
			if f.Duration, err = parseDuration(dur); err != nil {
				return f, fmt.Errorf("duration: %w", err)
			}
		}
	}
	parts := strings.SplitN(spec, ":", 3)
	f.Kind = FaultKind(parts[0])
	if !f.Kind.valid() {
		return f, fmt.Errorf("unknown kind %q (want %s)", parts[0], FaultKinds)
	}
	if len(parts) < 2 || parts[1] == "" {
		return f, errors.New("missing target")
	}
	f.Target = parts[1]
	value := ""
	if len(parts) == 3 {
		value = parts[2]
	}
	switch f.Kind {
	case Latency, Errors:
		f.Target, f.Operation, _ = strings.Cut(f.Target, "#")
	case NetworkDelay:
		caller, callee, ok := strings.Cut(f.Target, ">")
		if !ok {
			return f, errors.New("network_delay target must be CALLER>CALLEE (quote it in a shell)")
		}
		f.Target, f.Callee = strings.TrimSuffix(caller, "-"), callee
	}
	var err error
	switch f.Kind {
	case Latency, SlowDB, NetworkDelay:
		if value == "" {
			return f, fmt.Errorf("%s needs a delay such as +100ms", f.Kind)
		}
		if f.Delay, err = parseDuration(strings.TrimPrefix(value, "+")); err != nil {
			return f, fmt.Errorf("delay: %w", err)
		}
	case Errors:
		if value == "" {
			return f, errors.New("errors needs a fraction such as 0.2 or 20%")
		}
		if f.Fraction, err = parseFraction(value); err != nil {
			return f, fmt.Errorf("fraction: %w", err)
		}
	case DeadInstance:
		if value != "" {
			if f.Fraction, err = parseFraction(value); err != nil {
				return f, fmt.Errorf("fraction: %w", err)
			}
		}
	}
	return f, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	return time.ParseDuration(s)
}

func parseFraction(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, err
	}
	if pct {
		v /= 100
	}
	return v, nil
}

// String formats f in the syntax ParseFault reads.
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	b.WriteByte(':')
	b.WriteString(f.Target)
	if f.Operation != "" {
		b.WriteByte('#')
		b.WriteString(f.Operation)
	}
	if f.Callee != "" {
		b.WriteByte('>')
		b.WriteString(f.Callee)
	}
	switch {
	case f.Delay != 0:
		b.WriteString(":+")
		b.WriteString(f.Delay.String())
	case f.Fraction != 0:
		b.WriteByte(':')
		b.WriteString(strconv.FormatFloat(f.Fraction, 'g', -1, 64))
	}
	b.WriteByte('@')
	b.WriteString(f.Start.String())
	if f.Duration != 0 {
		b.WriteByte('/')
		b.WriteString(f.Duration.String())
	}
	return b.String()
}

// fieldError is an invalid configuration value, named by its field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func bad(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// apply checks f against the model and attaches its window to what it hits.
// Errors name the field at fault; the caller prefixes which fault.
func (f Fault) apply(m *model, start int64) error {
	if !f.Kind.valid() {
		return bad("Kind", "unknown fault kind %q (want %s)", f.Kind, FaultKinds)
	}
	if f.Start < 0 {
		return bad("Start", "%v is negative", f.Start)
	}
	if f.Duration < 0 {
		return bad("Duration", "%v is negative", f.Duration)
	}
	w := window{from: start + int64(f.Start), to: math.MaxInt64, delay: float64(f.Delay), frac: f.Fraction}
	if f.Duration > 0 {
		w.to = w.from + int64(f.Duration)
	}
	if f.Operation != "" && f.Kind != Latency && f.Kind != Errors {
		return bad("Operation", "%s faults apply to a whole target", f.Kind)
	}
	if f.Callee != "" && f.Kind != NetworkDelay {
		return bad("Callee", "only network_delay faults have a callee")
	}
	switch f.Kind {
	case Latency, SlowDB, NetworkDelay:
		if f.Delay <= 0 {
			return bad("Delay", "%s needs a positive delay, have %v", f.Kind, f.Delay)
		}
	case Errors:
		if !(f.Fraction > 0 && f.Fraction <= 1) {
			return bad("Fraction", "errors needs a fraction in (0, 1], have %v", f.Fraction)
		}
	case DeadInstance:
		if !(f.Fraction >= 0 && f.Fraction <= 1) {
			return bad("Fraction", "dead_instance needs a fraction in [0, 1], have %v", f.Fraction)
		}
		if f.Fraction == 0 {
			w.frac = 1
		}
	}

	switch f.Kind {
	case Latency, Errors:
		s := m.serviceNamed(f.Target)
		if s == nil {
			return bad("Target", "unknown service %q (have %s)", f.Target, m.serviceList())
		}
		hit := 0
		for _, o := range s.ops {
			if f.Operation != "" && o.name != f.Operation && o.method != f.Operation {
				continue
			}
			hit++
			if f.Kind == Latency {
				o.latency = append(o.latency, w)
			} else {
				o.errors = append(o.errors, w)
			}
		}
		if hit == 0 {
			return bad("Operation", "%s has no operation %q (have %s)", s.name, f.Operation, opList(s))
		}
	case SlowDB:
		p := m.peerNamed(f.Target)
		if p == nil || p.system == "http" {
			return bad("Target", "unknown database %q (have %s)", f.Target, m.dbList())
		}
		p.slow = append(p.slow, w)
	case NetworkDelay:
		if m.serviceNamed(f.Target) == nil {
			return bad("Target", "unknown calling service %q (have %s)", f.Target, m.serviceList())
		}
		hit := 0
		m.calls(func(c *call) {
			if c.from.name != f.Target || c.kind == callLocal {
				return
			}
			if (c.peer != nil && c.peer.name == f.Callee) || (c.to != nil && c.to.svc.name == f.Callee) {
				c.delay = append(c.delay, w)
				hit++
			}
		})
		if hit == 0 {
			return bad("Callee", "%s does not call %q", f.Target, f.Callee)
		}
	case DeadInstance:
		if s := m.serviceNamed(f.Target); s != nil {
			if s == m.roots[0].op.svc || (m.job != nil && s == m.job.svc) {
				return bad("Target", "%s has no instrumented callers", s.name)
			}
			s.dead = append(s.dead, w)
			return nil
		}
		if p := m.peerNamed(f.Target); p != nil {
			p.dead = append(p.dead, w)
			return nil
		}
		return bad("Target", "unknown service or peer %q (have %s, %s)", f.Target, m.serviceList(), m.peerList())
	}
	return nil
}

func (m *model) serviceList() string {
	var s []string
	for _, x := range m.services {
		s = append(s, x.name)
	}
	return strings.Join(s, ", ")
}

func (m *model) peerList() string {
	var s []string
	for _, x := range m.peers {
		s = append(s, x.name)
	}
	return strings.Join(s, ", ")
}

func (m *model) dbList() string {
	var s []string
	for _, x := range m.peers {
		if x.system != "http" {
			s = append(s, x.name)
		}
	}
	return strings.Join(s, ", ")
}

func opList(s *service) string {
	var ops []string
	for _, o := range s.ops {
		ops = append(ops, strconv.Quote(o.name))
	}
	return strings.Join(ops, ", ")
}
