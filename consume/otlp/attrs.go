package otlp

import "github.com/causeway/causeway/span"

// This file holds the attribute rules shared by FromProto and Decoder, so the
// two cannot disagree about which attribute wins.
//
// The rule, exactly: each field of span.Span fed by attributes has a list of
// keys, newest semantic-convention name first. An attribute is a candidate
// for the field when its key is in the list and its value is accepted (see
// picks.offerString and picks.offerInt). Among the candidates, the one whose
// key comes first in the list wins; among candidates with the same key, the
// one that comes last in the message wins. So the newer name wins whatever
// the order of the attributes, and an attribute that repeats a key overrides
// the earlier one, as the OTLP spec says a later duplicate key does.
//
// Resource attributes feed only Service (key service.name); span attributes
// feed the other fields and never Service.

// target is a field of span.Span fed by an attribute.
type target uint8

const (
	tNone target = iota
	// String targets, indexing picks.str.
	tPeerService
	tServerAddress
	tDBSystem
	tDBNamespace
	tMessagingSystem
	tMessagingDest
	// Integer targets.
	tHTTPStatus
	tGRPCStatus
	nTargets
)

const nStrTargets = int(tMessagingDest) + 1

// key says which target an attribute key feeds and how strongly: a larger
// prio beats a smaller one.
type key struct {
	t    target
	prio uint8
}

// spanKey returns the target fed by the span attribute key k, or tNone.
// Keys are matched by length first so an unknown key costs one switch.
func spanKey[T string | []byte](k T) key {
	switch len(k) {
	case 7:
		if string(k) == "db.name" {
			return key{tDBNamespace, 1}
		}
	case 9:
		if string(k) == "db.system" {
			return key{tDBSystem, 1}
		}
	case 12:
		switch string(k) {
		case "peer.service":
			return key{tPeerService, 1}
		case "db.namespace":
			return key{tDBNamespace, 2}
		}
	case 13:
		if string(k) == "net.peer.name" {
			return key{tServerAddress, 1}
		}
	case 14:
		switch string(k) {
		case "server.address":
			return key{tServerAddress, 2}
		case "db.system.name":
			return key{tDBSystem, 2}
		}
	case 16:
		switch string(k) {
		case "http.status_code":
			return key{tHTTPStatus, 1}
		case "messaging.system":
			return key{tMessagingSystem, 1}
		}
	case 20:
		if string(k) == "rpc.grpc.status_code" {
			return key{tGRPCStatus, 1}
		}
	case 21:
		if string(k) == "messaging.destination" {
			return key{tMessagingDest, 1}
		}
	case 25:
		if string(k) == "http.response.status_code" {
			return key{tHTTPStatus, 2}
		}
	case 26:
		if string(k) == "messaging.destination.name" {
			return key{tMessagingDest, 2}
		}
	}
	return key{}
}

// isServiceName reports whether the resource attribute key k is service.name.
func isServiceName[T string | []byte](k T) bool { return string(k) == "service.name" }

// picks collects the winning attribute value for each target of one span
// (or, for Service, one resource). T is string in FromProto and []byte,
// pointing into the message, in Decoder.
type picks[T string | []byte] struct {
	prio [nTargets]uint8
	str  [nStrTargets]T
	http int32
	grpc int32
}

// offerString offers a string value for k. Empty strings are not candidates
// (an empty server.address does not hide net.peer.name). For the HTTP status
// a string is a candidate when it holds a decimal int32, exactly as
// strconv.ParseInt(v, 10, 32) accepts it; for the gRPC status a string is
// never a candidate.
func (p *picks[T]) offerString(k key, v T) {
	switch {
	case k.t == tNone || k.prio < p.prio[k.t]:
	case k.t < tHTTPStatus:
		if len(v) > 0 {
			p.prio[k.t] = k.prio
			p.str[k.t] = v
		}
	case k.t == tHTTPStatus:
		if n, ok := parseInt32(v); ok {
			p.prio[k.t] = k.prio
			p.http = n
		}
	}
}

// offerInt offers an integer value for k. It is a candidate for the HTTP
// and gRPC status when it fits in an int32, and never for string targets.
func (p *picks[T]) offerInt(k key, v int64) {
	if k.t < tHTTPStatus || k.prio < p.prio[k.t] || v != int64(int32(v)) {
		return
	}
	p.prio[k.t] = k.prio
	if k.t == tHTTPStatus {
		p.http = int32(v)
	} else {
		p.grpc = int32(v)
	}
}

// grpcStatus returns the picked gRPC status, -1 when none.
func (p *picks[T]) grpcStatus() int32 {
	if p.prio[tGRPCStatus] == 0 {
		return -1
	}
	return p.grpc
}

// parseInt32 parses s as strconv.ParseInt(s, 10, 32) does: an optional sign,
// then one or more ASCII digits, in the int32 range. It does not allocate.
func parseInt32[T string | []byte](s T) (int32, bool) {
	i, neg := 0, false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		i = 1
	}
	if i == len(s) {
		return 0, false
	}
	var n int64
	for ; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int64(c)
		if n > 1<<31 {
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	if n != int64(int32(n)) {
		return 0, false
	}
	return int32(n), true
}

// kindOf maps the OTLP span kind to span.Kind. Values outside the OTLP enum
// (a newer producer, or garbage) become KindUnspecified rather than a kind
// nobody handles.
func kindOf(k int32) span.Kind {
	if k < 0 || k > int32(span.KindConsumer) {
		return span.KindUnspecified
	}
	return span.Kind(k)
}

// statusOf maps the OTLP status code to span.StatusCode; values outside the
// enum become StatusUnset.
func statusOf(c int32) span.StatusCode {
	if c < 0 || c > int32(span.StatusError) {
		return span.StatusUnset
	}
	return span.StatusCode(c)
}
