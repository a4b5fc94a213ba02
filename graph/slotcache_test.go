package graph

import (
	"fmt"
	"strings"
	"testing"
)

// The cache in front of the slot maps answers as the maps do: the same
// slot for equal strings at other addresses, and the right one among keys
// that share a cache entry.
func TestSlotCache(t *testing.T) {
	a := New(Config{}, nil, nil)
	var ops []OpKey
	var edges []EdgeKey
	services := []string{"cart", "checkout", "payment", "shipping"}
	for i := range 3000 { // three entries per cache line, on average
		// Interned, as the decoder's are: keys that share a cache
		// entry often share all but one string.
		svc := services[i%len(services)]
		ops = append(ops, OpKey{Service: svc, Operation: fmt.Sprintf("op-%d", i)})
		edges = append(edges, EdgeKey{Source: "frontend", Target: svc, Operation: fmt.Sprintf("op-%d", i)})
	}
	for pass := range 3 {
		for i, k := range ops {
			if pass == 2 { // equal strings, other bytes
				k = OpKey{Service: strings.Clone(k.Service), Operation: strings.Clone(k.Operation)}
			}
			sl := a.opSlot(k)
			if sl == nil || sl.key != ops[i] || sl != a.ops[ops[i]] {
				t.Fatalf("pass %d: operation %v got slot %+v", pass, k, sl)
			}
		}
		for i, k := range edges {
			if pass == 2 {
				k = EdgeKey{Source: strings.Clone(k.Source), Target: strings.Clone(k.Target), Operation: strings.Clone(k.Operation)}
			}
			sl := a.edgeSlot(k)
			if sl == nil || sl.key != edges[i] || sl != a.edgeSlots[edges[i]] {
				t.Fatalf("pass %d: edge %v got slot %+v", pass, k, sl)
			}
		}
	}
}
