package rank

import (
	"math"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/model/baseline"
)

func fs(name string, cur, exp, z float64) baseline.FeatureScore {
	return baseline.FeatureScore{Name: name, Kind: graph.KindNamed(name), Current: cur, Expected: exp, Z: z, Counts: true}
}

func edgeObs(src, dst, op string, nk graph.NodeKind, feats ...baseline.FeatureScore) Observation {
	k := graph.EdgeKey{Source: src, Target: dst, Operation: op}
	return Observation{Finding: baselines.Finding{Edge: &k, Score: baseline.Score{Active: true, Features: feats}}, Windows: 3, NodeKind: nk}
}

func opObs(svc, op string, feats ...baseline.FeatureScore) Observation {
	k := graph.OpKey{Service: svc, Operation: op}
	return Observation{Finding: baselines.Finding{Op: &k, Score: baseline.Score{Active: true, Features: feats}}, Windows: 3}
}

// clientObs is a client operation of svc whose calls callee answered.
func clientObs(svc, op, callee string, feats ...baseline.FeatureScore) Observation {
	o := opObs(svc, op, feats...)
	o.ClientOp, o.Callee = true, callee
	return o
}

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []Observation
		want string
		kind SuspectKind
	}{
		{"self time beats its victims", []Observation{
			opObs("frontend", "GET /checkout", fs("p50", 260, 60, 20)),
			opObs("checkoutservice", "PlaceOrder", fs("p50", 230, 30, 20)),
			edgeObs("frontend", "checkoutservice", "PlaceOrder", graph.NodeService, fs("p50", 232, 32, 20)),
			edgeObs("checkoutservice", "paymentservice", "Charge", graph.NodeService, fs("p50", 228, 28, 20)),
			opObs("paymentservice", "Charge", fs("p50", 226, 26, 20), fs("self time", 220, 20, 25)),
		}, "paymentservice", SuspectLatency},
		{"gap towards one callee from many callers: its network", []Observation{
			edgeObs("frontend", "cartservice", "GetCart", graph.NodeService, fs("client-server gap", 40, 1, 30)),
			edgeObs("checkoutservice", "cartservice", "GetCart", graph.NodeService, fs("client-server gap", 41, 1, 30)),
		}, "cartservice", SuspectNetwork},
		{"gap from one caller to many callees: the caller", []Observation{
			edgeObs("frontend", "cartservice", "GetCart", graph.NodeService, fs("client-server gap", 90, 1, 30)),
			edgeObs("frontend", "adservice", "GetAds", graph.NodeService, fs("client-server gap", 80, 1, 30)),
			edgeObs("frontend", "currencyservice", "Convert", graph.NodeService, fs("client-server gap", 85, 1, 30)),
		}, "frontend", SuspectLatency},
		{"a slow database", []Observation{
			opObs("productcatalogservice", "ListProducts", fs("p50", 40, 5, 20)),
			edgeObs("productcatalogservice", "catalog-db", "SELECT", graph.NodeDatabase, fs("p50", 35, 2, 25)),
			edgeObs("frontend", "productcatalogservice", "ListProducts", graph.NodeService, fs("p50", 42, 6, 20)),
		}, "catalog-db", SuspectDependency},
		{"calls fail with no answer", []Observation{
			edgeObs("frontend", "cartservice", "GetCart", graph.NodeService, fs("error ratio", 100, 0, 50)),
			opObs("frontend", "GET /cart", fs("error ratio", 100, 0, 50)),
		}, "cartservice", SuspectDown},
		{"a quiet client call waits longer than its callee works: the network to it", []Observation{
			clientObs("frontend", "PlaceOrder", "checkoutservice", fs("self time", 426, 4.3, 9)),
			opObs("frontend", "POST /cart/checkout", fs("p50", 700, 280, 6)),
		}, "checkoutservice", SuspectNetwork},
		{"every call fails where a quarter usually did: no answer, stronger than its database's tail", []Observation{
			edgeObs("order", "inventory", "GET", graph.NodeService, fs("error ratio", 100, 24.4, 6)),
			edgeObs("inventory", "inventory-db", "update", graph.NodeDatabase, fs("p50", 60, 1.7, 6)),
		}, "inventory", SuspectDown},
		{"a client call's wait counts where its edge is slower but its gap is not anomalous", []Observation{
			edgeObs("seat", "order", "POST /tickets", graph.NodeService, fs("p50", 7, 4.7, 3)),
			clientObs("seat", "POST", "order", fs("self time", 4.2, 0.4, 9)),
			edgeObs("preserve", "contacts", "GET /contacts", graph.NodeService, fs("p50", 5.2, 2.6, 5)),
		}, "order", SuspectNetwork},
		{"errors start where callees are fine", []Observation{
			opObs("frontend", "POST /checkout", fs("error ratio", 30, 0, 20)),
			edgeObs("frontend", "checkoutservice", "PlaceOrder", graph.NodeService, fs("error ratio", 30, 0, 20)),
			opObs("checkoutservice", "PlaceOrder", fs("error ratio", 30, 0, 20)),
		}, "checkoutservice", SuspectErrors},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Rank(tc.obs, nil)
			if len(got) == 0 || got[0].Service != tc.want || got[0].Kind != tc.kind {
				t.Fatalf("top suspect %+v, want %s (%s); all: %v", first(got), tc.want, tc.kind, suspectNames(got))
			}
			if got[0].Summary == "" || len(got[0].Evidence) == 0 {
				t.Errorf("top suspect without evidence: %+v", got[0])
			}
		})
	}
}

func first(s []Suspect) Suspect {
	if len(s) == 0 {
		return Suspect{}
	}
	return s[0]
}

func suspectNames(s []Suspect) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Service+"/"+string(x.Kind))
	}
	return out
}

// TestNetworkSuspectNamesTheEdge: a slower network on one caller's calls
// names that edge (caller and callee); on several callers' calls, the
// callee's network alone.
func TestNetworkSuspectNamesTheEdge(t *testing.T) {
	one := Rank([]Observation{
		edgeObs("checkoutservice", "paymentservice", "Charge", graph.NodeService, fs("client-server gap", 60, 1, 30)),
	}, nil)
	if len(one) == 0 || one[0].Kind != SuspectNetwork || one[0].Caller != "checkoutservice" || one[0].Callee != "paymentservice" {
		t.Fatalf("one caller: %+v, want the edge checkoutservice -> paymentservice", one)
	}
	many := Rank([]Observation{
		edgeObs("frontend", "cartservice", "GetCart", graph.NodeService, fs("client-server gap", 40, 1, 30)),
		edgeObs("checkoutservice", "cartservice", "GetCart", graph.NodeService, fs("client-server gap", 41, 1, 30)),
	}, nil)
	if len(many) == 0 || many[0].Service != "cartservice" || many[0].Caller != "" || many[0].Callee != "" {
		t.Fatalf("several callers: %+v, want cartservice's network, no edge", many)
	}
}

// TestSupportingEvidenceWeighsLess: a quiet series half way to
// significance names a suspect nothing else points at, but does not
// outweigh significant evidence of the same size.
func TestSupportingEvidenceWeighsLess(t *testing.T) {
	support := opObs("emailservice", "Send", fs("self time", 200, 10, math.Sqrt(2*baselines.SeqThreshold*0.6)))
	support.Score.Supporting, support.Score.Active = true, false
	support.Score.Value = math.Sqrt(2 * baselines.SeqThreshold * 0.6)
	alone := Rank([]Observation{support}, nil)
	if len(alone) == 0 || alone[0].Service != "emailservice" {
		t.Fatalf("alone: %+v", alone)
	}
	both := Rank([]Observation{support, opObs("paymentservice", "Charge", fs("self time", 200, 10, 20))}, nil)
	if both[0].Service != "paymentservice" {
		t.Fatalf("with significant evidence: %+v, want paymentservice first", both)
	}
}

// TestSummaryDescribesItsEvidence: a suspect's sentence describes the
// evidence it rests on — its operation, not another's — says a victim is
// slower (not slower itself), and says how many calls over how long
// accumulated evidence rests on.
func TestSummaryDescribesItsEvidence(t *testing.T) {
	db := fs("p50", 80, 1.5, 30)
	db.Calls, db.Hits, db.Over, db.Horizon = 14, 12, "p99", 2*time.Minute
	got := Rank([]Observation{
		opObs("productcatalogservice", "GetProduct", fs("p50", 10, 5, 6)),
		opObs("productcatalogservice", "ListProducts", fs("p50", 82.3, 2.02, 20)),
		edgeObs("productcatalogservice", "catalog-db", "SELECT", graph.NodeDatabase, db),
	}, nil)
	var victim, dep *Suspect
	for i := range got {
		switch got[i].Service {
		case "productcatalogservice":
			victim = &got[i]
		case "catalog-db":
			dep = &got[i]
		}
	}
	if victim == nil || dep == nil {
		t.Fatalf("suspects %v", suspectNames(got))
	}
	want := "productcatalogservice is slower: p50 82.3 ms vs 2.02 ms normally (op productcatalogservice/ListProducts); its own time did not rise, so a callee may explain it"
	if victim.Operation != "ListProducts" || victim.Summary != want {
		t.Errorf("victim: operation %q, summary\n%q\nwant\n%q", victim.Operation, victim.Summary, want)
	}
	want = "database catalog-db is slower or failing: 12 of 14 calls over 2m0s above the usual p99 (p50 80 ms vs 1.5 ms normally) (edge productcatalogservice->catalog-db:SELECT)"
	if dep.Summary != want || dep.Evidence[0].Text == "" {
		t.Errorf("dependency: summary\n%q\nwant\n%q", dep.Summary, want)
	}
}
