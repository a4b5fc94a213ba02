// Package graph turns spans into a service graph with per-window statistics.
//
// Spans are buffered per trace in a bounded pending store until the stream's
// event time has moved past the trace; each finished trace is then joined
// parent to child. A change of service.name between a parent and its child
// is a call edge; a client or producer span with no instrumented child
// becomes an edge to a virtual node (database, cache, queue, external host)
// named from its attributes. Observations land in event-time tumbling
// windows that a watermark closes; each closed window is handed on, and a
// snapshot of the graph is published for readers.
//
// It also holds the vocabulary its subpackages share: the keys of edges
// and operations (EdgeKey, OpKey), the series they make (Series) and the
// kinds of their features (KindP50...). Judging the closed windows is
// graph/baselines' job, ranking the suspects graph/rank's.
package graph

import (
	"cmp"
	"slices"
	"strings"

	"github.com/causeway/causeway/span"
)

// NodeKind says what a node of the graph stands for.
type NodeKind string

// Node kinds. Only NodeService is instrumented; the others are virtual
// nodes seen from their callers' client or producer spans.
const (
	NodeService  NodeKind = "service"
	NodeDatabase NodeKind = "database"
	NodeCache    NodeKind = "cache"
	NodeQueue    NodeKind = "queue"
	NodeExternal NodeKind = "external"
)

// Node identifies a node of the graph: a service, or a virtual peer.
type Node struct {
	Name   string   `json:"id"`
	Kind   NodeKind `json:"kind"`
	System string   `json:"system,omitempty"` // db.system or messaging.system of a virtual node
}

// cacheSystems are db.system values that name a cache rather than a database.
var cacheSystems = map[string]bool{"redis": true, "memcached": true, "valkey": true, "hazelcast": true, "coherence": true, "geode": true}

// peerOf names the uninstrumented peer a client or producer span calls, from
// its attributes, or reports false when the span names none. Messaging wins
// over database wins over peer.service wins over server.address, since the
// more specific attributes say more about what the peer is.
func peerOf(s *span.Span) (Node, bool) {
	switch {
	case s.MessagingSystem != "":
		name := s.MessagingDest
		if name == "" {
			name = s.MessagingSystem
		}
		return Node{Name: name, Kind: NodeQueue, System: s.MessagingSystem}, true
	case s.DBSystem != "":
		kind := NodeDatabase
		if cacheSystems[strings.ToLower(s.DBSystem)] {
			kind = NodeCache
		}
		name := s.ServerAddress
		if name == "" {
			name = s.DBNamespace
		}
		if name == "" {
			name = s.DBSystem
		}
		return Node{Name: name, Kind: kind, System: s.DBSystem}, true
	case s.PeerService != "":
		return Node{Name: s.PeerService, Kind: NodeExternal}, true
	case s.ServerAddress != "":
		return Node{Name: s.ServerAddress, Kind: NodeExternal}, true
	}
	return Node{}, false
}

// EdgeKey identifies a call edge: the calling service, the callee node and
// the callee operation (the server span's name, or the client span's name
// for a virtual callee).
type EdgeKey struct {
	Source    string
	Target    string
	Operation string
}

// String renders the key as "source->target:operation".
func (k EdgeKey) String() string { return k.Source + "->" + k.Target + ":" + k.Operation }

// OpKey identifies a service's operation, the unit self time is measured on.
type OpKey struct {
	Service   string
	Operation string
}

// SortedKeys returns the keys of m sorted by cmp: windows are scored and
// state is saved in that order, so that both are deterministic.
func SortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

// CompareEdge orders edge keys by source, target, then operation.
func CompareEdge(a, b EdgeKey) int {
	return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Target, b.Target), cmp.Compare(a.Operation, b.Operation))
}

// CompareOp orders operation keys by service, then operation.
func CompareOp(a, b OpKey) int {
	return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation))
}
