package span

import "time"

// Reason names why input was rejected. Reasons are used as a metric label, so
// the set is small and fixed.
type Reason string

// Reasons for rejecting a whole message or a single span.
const (
	ReasonNotProtobuf    Reason = "not_protobuf"    // message does not parse as OTLP protobuf
	ReasonTruncated      Reason = "truncated"       // message ends inside a field
	ReasonBadJSON        Reason = "bad_json"        // message does not parse as OTLP JSON
	ReasonOversize       Reason = "oversize"        // message larger than the configured limit
	ReasonNoService      Reason = "no_service_name" // span whose resource has no service.name
	ReasonBadID          Reason = "bad_id"          // zero or malformed trace or span id
	ReasonBadTimestamp   Reason = "bad_timestamp"   // missing, reversed or absurd start/end time
	ReasonTooLong        Reason = "too_long"        // span longer than the longest allowed duration
	ReasonTooLate        Reason = "too_late"        // span older than the watermark minus allowed lateness
	ReasonPendingFull    Reason = "pending_full"    // pairing store full, span evicted unpaired
	ReasonTooManySpans   Reason = "too_many_spans"  // message holds more spans than allowed
	ReasonLongName       Reason = "long_name"       // a service, operation or peer name longer than allowed
	ReasonDecodeInternal Reason = "internal"        // decoder failure not caused by the input
)

// Limits bounds what a single span may claim. The zero value uses defaults.
type Limits struct {
	// MaxDuration is the longest span accepted; longer ones are rejected as
	// ReasonTooLong. Default 1 hour.
	MaxDuration time.Duration
	// MinTime and MaxTime bound start and end times (Unix nanoseconds).
	// Defaults: 2000-01-01 and 2200-01-01, which rejects zero and
	// garbage timestamps without depending on the wall clock.
	MinTime, MaxTime int64
	// MaxNameBytes is the longest service, operation or peer name (the
	// names that become keys of the graph) accepted; spans with a longer
	// one are rejected as ReasonLongName. Default 512.
	MaxNameBytes int
}

var (
	defaultMinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	defaultMaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

func (l Limits) withDefaults() Limits {
	if l.MaxDuration <= 0 {
		l.MaxDuration = time.Hour
	}
	if l.MinTime == 0 {
		l.MinTime = defaultMinTime
	}
	if l.MaxTime == 0 {
		l.MaxTime = defaultMaxTime
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = 512
	}
	return l
}

// Check returns the reason s is unusable, or "" when it is fine. It is the
// one place both decoders' output is validated, so they reject alike.
func (l Limits) Check(s *Span) Reason {
	l = l.withDefaults()
	switch {
	case s.Service == "":
		return ReasonNoService
	case s.TraceID.IsZero() || s.SpanID.IsZero():
		return ReasonBadID
	case s.Start < l.MinTime || s.End > l.MaxTime || s.End < s.Start:
		return ReasonBadTimestamp
	case s.End-s.Start > int64(l.MaxDuration):
		return ReasonTooLong
	case max(len(s.Service), len(s.Name), len(s.PeerService), len(s.ServerAddress), len(s.DBSystem),
		len(s.DBNamespace), len(s.MessagingSystem), len(s.MessagingDest)) > l.MaxNameBytes:
		return ReasonLongName
	}
	return ""
}
