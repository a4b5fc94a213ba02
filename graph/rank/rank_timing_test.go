package rank

import (
	"fmt"
	"testing"

	"github.com/causeway/causeway/graph"
)

// bigIncident is an incident over n services in a call tree (each service
// calls three others): every edge and operation on the paths from the
// root to a slow leaf is anomalous, and so are unrelated edges elsewhere,
// as in a large outage.
func bigIncident(n int) ([]Observation, *Topology) {
	topo := NewTopology()
	var obs []Observation
	svc := func(i int) string { return fmt.Sprintf("svc%03d", i) }
	for i := 1; i < n; i++ {
		parent := (i - 1) / 3
		topo.Callees[svc(parent)]++
		topo.Callers[svc(i)]++
		obs = append(obs, edgeObs(svc(parent), svc(i), "op", graph.NodeService, fs("p50", 230, 30, 12)))
		obs = append(obs, opObs(svc(i), "op", fs("p50", 228, 28, 12)))
	}
	obs = append(obs, opObs(svc(n-1), "op", fs("self time", 220, 20, 25)))
	return obs, topo
}

func TestRankBigIncident(t *testing.T) {
	obs, topo := bigIncident(500)
	got := Rank(obs, topo)
	if len(got) == 0 || got[0].Service != "svc499" {
		t.Fatalf("top suspect of the 500-service incident: %+v", got[:min(3, len(got))])
	}
}

// BenchmarkRank500 ranks an incident over 500 services (about 1,000
// anomalous series). Issue target: under 50 ms.
func BenchmarkRank500(b *testing.B) {
	obs, topo := bigIncident(500)
	b.ReportAllocs()
	for b.Loop() {
		Rank(obs, topo)
	}
}
