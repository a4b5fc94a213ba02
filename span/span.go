// Package span is the shared vocabulary at the bottom of Causeway: the decoded
// span record that consume/ produces and graph/ consumes, and the checks that
// decide whether a record is usable. It imports nothing of ours.
package span

import (
	"encoding/hex"
	"fmt"
)

// TraceID is a 16-byte OpenTelemetry trace id.
type TraceID [16]byte

// String returns the lowercase hex form used on the wire by OTLP JSON and as
// the Kafka message key by the Collector's kafka exporter.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsZero reports whether t is the invalid all-zero id.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// ID is an 8-byte OpenTelemetry span id.
type ID [8]byte

// String returns the lowercase hex form of the id.
func (s ID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is the invalid all-zero id (used for "no parent").
func (s ID) IsZero() bool { return s == ID{} }

// Kind is the OTLP span kind. The numeric values match the OTLP enum.
type Kind uint8

// Span kinds, numbered as in OTLP.
const (
	KindUnspecified Kind = 0
	KindInternal    Kind = 1
	KindServer      Kind = 2
	KindClient      Kind = 3
	KindProducer    Kind = 4
	KindConsumer    Kind = 5
)

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

// String returns the lowercase name of the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// StatusCode is the OTLP status code. The numeric values match the OTLP enum.
type StatusCode uint8

// Status codes, numbered as in OTLP.
const (
	StatusUnset StatusCode = 0
	StatusOK    StatusCode = 1
	StatusError StatusCode = 2
)

// Span is one decoded span, reduced to what the detector needs. Strings are
// usually interned by the decoder, so equal names share storage; a Span holds
// no reference to the message it was decoded from.
type Span struct {
	TraceID  TraceID
	SpanID   ID
	ParentID ID // zero for a root span

	Service string // resource attribute service.name
	Name    string // span name, the operation
	Kind    Kind

	Start int64 // start time, Unix nanoseconds
	End   int64 // end time, Unix nanoseconds

	Status StatusCode
	// HTTPStatus is http.response.status_code (or the older
	// http.status_code); 0 when absent.
	HTTPStatus int32
	// GRPCStatus is rpc.grpc.status_code; -1 when absent.
	GRPCStatus int32

	// Attributes that name an uninstrumented peer of a client or producer
	// span; empty when absent.
	PeerService     string // peer.service
	ServerAddress   string // server.address, or net.peer.name
	DBSystem        string // db.system (or db.system.name)
	DBNamespace     string // db.namespace (or db.name)
	MessagingSystem string // messaging.system
	MessagingDest   string // messaging.destination.name (or messaging.destination)
}

// Duration returns End-Start in nanoseconds.
func (s *Span) Duration() int64 { return s.End - s.Start }

// Failed reports whether the span records a failed call: status error, an
// HTTP 5xx response, or a gRPC status other than OK.
func (s *Span) Failed() bool {
	return s.Status == StatusError || s.HTTPStatus >= 500 || s.GRPCStatus > 0
}
