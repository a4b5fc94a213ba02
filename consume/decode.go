// Package consume reads OpenTelemetry spans from Kafka, exactly as an
// unmodified OpenTelemetry Collector kafka exporter writes them, and turns
// each message into checked span records for the next stage.
//
// Offsets are committed only after the next stage says a message's spans
// were applied (at-least-once). Bad input never stops the consumer: a
// message that does not decode, and each unusable span in one that does, is
// counted by reason, logged at most once per interval with a sample,
// skipped, and optionally copied to a dead-letter topic.
package consume

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/causeway/causeway/consume/otlp"
	"github.com/causeway/causeway/span"
)

// Encoding is how span messages are encoded, named as in the Collector's
// kafka exporter.
type Encoding string

// Encodings the Collector's kafka exporter writes for traces.
const (
	EncodingProto Encoding = "otlp_proto" // ExportTraceServiceRequest, protobuf (the exporter's default)
	EncodingJSON  Encoding = "otlp_json"  // the same request as OTLP JSON: hex ids, enums as numbers
)

// ParseEncoding checks an encoding name; "" means otlp_proto.
func ParseEncoding(s string) (Encoding, error) {
	switch Encoding(s) {
	case "", EncodingProto:
		return EncodingProto, nil
	case EncodingJSON:
		return EncodingJSON, nil
	}
	return "", fmt.Errorf("unknown encoding %q (want otlp_proto or otlp_json)", s)
}

// Decoder turns one message into checked span records. It keeps buffers and
// an interning table between calls, so it is not safe for concurrent use;
// give each goroutine its own.
type Decoder struct {
	enc    Encoding
	limits span.Limits
	// MaxMessageBytes rejects larger messages as oversize; 0 means no limit.
	maxBytes int

	fast otlp.Decoder
	json ptrace.JSONUnmarshaler
	pb   ptrace.ProtoMarshaler
	buf  []span.Span
}

// NewDecoder returns a decoder for enc that rejects spans failing limits and
// messages over maxBytes (0: no limit).
func NewDecoder(enc Encoding, limits span.Limits, maxBytes int) *Decoder {
	return &Decoder{enc: enc, limits: limits, maxBytes: maxBytes}
}

// Result is what one message decoded to.
type Result struct {
	// Spans are the usable spans, valid until the next Decode call.
	Spans []span.Span
	// Rejected counts the unusable spans by reason.
	Rejected map[span.Reason]int
}

// Error is a message that could not be decoded at all.
type Error struct {
	Reason span.Reason
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Decode decodes msg. On error the message is unusable as a whole and the
// error is an *Error naming the reason.
func (d *Decoder) Decode(msg []byte) (Result, error) {
	res, err := d.DecodeInto(msg, d.buf)
	if err == nil {
		d.buf = res.Spans
	}
	return res, err
}

// DecodeInto is Decode into dst's storage, from its start, instead of the
// decoder's own: Result.Spans is the caller's, valid for as long as it
// likes, and may be handed on without a copy.
func (d *Decoder) DecodeInto(msg []byte, dst []span.Span) (Result, error) {
	if d.maxBytes > 0 && len(msg) > d.maxBytes {
		return Result{}, &Error{Reason: span.ReasonOversize, Err: fmt.Errorf("message of %d bytes exceeds the %d-byte limit", len(msg), d.maxBytes)}
	}
	pb := msg
	if d.enc == EncodingJSON {
		// The Collector's own JSON reader: it accepts exactly what the
		// kafka exporter's otlp_json encoding writes (hex ids, 64-bit
		// integers as strings, enums as numbers or names).
		td, err := d.json.UnmarshalTraces(msg)
		if err != nil {
			return Result{}, &Error{Reason: span.ReasonBadJSON, Err: err}
		}
		if pb, err = d.pb.MarshalTraces(td); err != nil {
			return Result{}, &Error{Reason: span.ReasonDecodeInternal, Err: fmt.Errorf("re-encode json as protobuf: %w", err)}
		}
	}
	spans, err := d.fast.Decode(pb, dst[:0])
	if err != nil {
		reason := span.ReasonNotProtobuf
		var de *otlp.DecodeError
		if errors.As(err, &de) {
			reason, err = de.Reason, de.Err
		}
		if d.enc == EncodingJSON {
			// The JSON parsed but holds what OTLP forbids (a string that
			// is not UTF-8): still bad JSON to whoever sent it.
			reason = span.ReasonBadJSON
		}
		return Result{}, &Error{Reason: reason, Err: err}
	}
	var res Result
	kept := spans[:0]
	for i := range spans {
		if r := d.limits.Check(&spans[i]); r != "" {
			if res.Rejected == nil {
				res.Rejected = make(map[span.Reason]int)
			}
			res.Rejected[r]++
			continue
		}
		kept = append(kept, spans[i])
	}
	res.Spans = kept
	return res, nil
}

// SetMaxSpans makes messages of more than n spans (0: no limit) fail as
// span.ReasonTooManySpans.
func (d *Decoder) SetMaxSpans(n int) { d.fast.MaxSpans = n }

// SetMaxTime makes spans ending after t (Unix ns) count as bad timestamps.
// Live consumers move it with the wall clock, so a producer whose clock runs
// far ahead cannot drag event time into the future.
func (d *Decoder) SetMaxTime(t int64) { d.limits.MaxTime = t }
