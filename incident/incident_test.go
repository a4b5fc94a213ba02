package incident

import (
	"bytes"
	"encoding/gob"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/graph/rank"
	"github.com/causeway/causeway/model/baseline"
	"github.com/causeway/causeway/span"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func window(i int) *graph.Window {
	return graph.NewWindow(t0.Add(time.Duration(i)*10*time.Second), t0.Add(time.Duration(i+1)*10*time.Second))
}

func edgeFinding(src, dst string, feats ...baseline.FeatureScore) baselines.Finding {
	k := graph.EdgeKey{Source: src, Target: dst, Operation: "op"}
	return baselines.Finding{Edge: &k, Score: baseline.Score{Active: true, Value: 9, Features: feats}}
}

func opFinding(svc string, feats ...baseline.FeatureScore) baselines.Finding {
	k := graph.OpKey{Service: svc, Operation: "op"}
	return baselines.Finding{Op: &k, Score: baseline.Score{Active: true, Value: 9, Features: feats}}
}

func self(cur, exp float64) baseline.FeatureScore {
	return baseline.FeatureScore{Name: "self time", Kind: graph.KindSelfTime, Current: cur, Expected: exp, Z: 20, Counts: true}
}

func TestIncidentLifecycle(t *testing.T) {
	store := &Store{Path: filepath.Join(t.TempDir(), "incidents.json")}
	m, err := NewManager(Options{Store: store, Quiet: 3})
	if err != nil {
		t.Fatal(err)
	}
	observe := func(i int, fs ...baselines.Finding) []Change {
		t.Helper()
		ch, err := m.Observe(window(i), fs)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	// Window 0: payment slow, its caller too; adservice alone, unrelated.
	ch := observe(0,
		edgeFinding("checkoutservice", "paymentservice"),
		opFinding("paymentservice", self(200, 20)),
		opFinding("adservice", self(50, 5)))
	if len(ch) != 2 || ch[0].Kind != "opened" || ch[1].Kind != "opened" {
		t.Fatalf("window 0 changes %+v: want two incidents opened", ch)
	}
	var pay Incident
	for _, c := range ch {
		if c.Incident.Suspects[0].Service == "paymentservice" {
			pay = c.Incident
		}
	}
	if pay.ID == "" || len(pay.Services) != 2 {
		t.Fatalf("payment incident %+v", pay)
	}
	// Window 1: the anomaly spreads to frontend through checkout: same incident.
	observe(1, edgeFinding("frontend", "checkoutservice"), opFinding("paymentservice", self(210, 20)))
	got, ok := m.Get(pay.ID)
	if !ok || len(got.Services) != 3 || got.State != Open {
		t.Fatalf("after spreading: %+v", got)
	}
	// Three quiet windows resolve each: adservice was quiet since window 1.
	observe(2)
	if ch = observe(3); len(ch) != 1 || ch[0].Kind != "resolved" || ch[0].Incident.ID == pay.ID {
		t.Fatalf("window 3 changes %+v: want the adservice incident resolved", ch)
	}
	if ch = observe(4); len(ch) != 1 || ch[0].Kind != "resolved" || ch[0].Incident.ID != pay.ID {
		t.Fatalf("window 4 changes %+v: want the payment incident resolved", ch)
	}
	if open := m.List(Open, time.Time{}, time.Time{}); len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
	// The store survives a restart.
	m.Flush()
	again, err := NewManager(Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := again.Get(pay.ID)
	if !ok || r.State != Resolved || r.ResolvedAt == nil || !r.ResolvedAt.Equal(t0.Add(50*time.Second)) || r.Suspects[0].Service != "paymentservice" {
		t.Fatalf("after restart: %+v", r)
	}
	if all := again.List("", t0.Add(time.Hour), time.Time{}); len(all) != 0 {
		t.Fatalf("since filter kept %d incidents resolved before it", len(all))
	}
}

// TestCallersOfASlowServiceJoinItsIncident: operation anomalies touch one
// service each; the calls between them in the window make one incident.
func TestCallersOfASlowServiceJoinItsIncident(t *testing.T) {
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := window(0)
	for _, k := range []graph.EdgeKey{{Source: "frontend", Target: "checkoutservice"}, {Source: "checkoutservice", Target: "paymentservice"}, {Source: "frontend", Target: "adservice"}} {
		w.Edges[k] = &graph.EdgeStats{}
	}
	p50 := baseline.FeatureScore{Name: "p50", Kind: graph.KindP50, Current: 250, Expected: 50, Z: 12, Counts: true}
	ch, err := m.Observe(w, []baselines.Finding{opFinding("frontend", p50), opFinding("checkoutservice", p50), opFinding("paymentservice", self(200, 1))})
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || len(ch[0].Incident.Services) != 3 || ch[0].Incident.Suspects[0].Service != "paymentservice" {
		t.Fatalf("changes %+v: want one incident over three services, paymentservice first", ch)
	}
}

// TestSeverityAndMerge: severity rises with the score and bumps the
// revision; two open incidents that turn out to be one are merged, and the
// folded one is reported resolved so its alerts are taken back.
func TestSeverityAndMerge(t *testing.T) {
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := m.Observe(window(0), []baselines.Finding{opFinding("paymentservice", self(200, 20)), opFinding("adservice", self(50, 5))})
	if err != nil || len(ch) != 2 {
		t.Fatalf("window 0: %+v, %v", ch, err)
	}
	pay, ad := ch[0].Incident, ch[1].Incident
	if pay.Suspects[0].Service != "paymentservice" {
		pay, ad = ad, pay
	}
	if pay.Severity != Warning || pay.Revision != 1 {
		t.Fatalf("opened: severity %q revision %d, want warning 1", pay.Severity, pay.Revision)
	}
	worse := opFinding("paymentservice", self(900, 20))
	worse.Score.Value = CriticalScore + 1
	ch, _ = m.Observe(window(1), []baselines.Finding{worse, opFinding("adservice", self(50, 5))})
	if len(ch) != 1 || ch[0].Kind != "updated" || ch[0].Incident.Severity != Critical || ch[0].Incident.Revision != 2 {
		t.Fatalf("window 1 changes %+v: want payment updated to critical, revision 2", ch)
	}
	// checkout calls both and is anomalous: one problem now.
	ch, _ = m.Observe(window(2), []baselines.Finding{edgeFinding("paymentservice", "adservice")})
	// The older of the two (in list order) absorbs the other.
	kept, folded := ad, pay
	if len(ch) != 2 || ch[0].Kind != "resolved" || ch[1].Kind != "updated" {
		t.Fatalf("window 2 changes %+v: want one resolved as merged, one updated", ch)
	}
	if ch[0].Incident.ID != folded.ID || ch[0].Incident.MergedInto != kept.ID || ch[1].Incident.ID != kept.ID {
		t.Fatalf("window 2: %s resolved into %q, %s updated; want %s into %s", ch[0].Incident.ID, ch[0].Incident.MergedInto, ch[1].Incident.ID, folded.ID, kept.ID)
	}
	if ch[1].Incident.Severity != Critical {
		t.Errorf("merged incident severity %q, want critical from the folded anomalies", ch[1].Incident.Severity)
	}
}

// TestSupportingEvidence: a series half way to significance joins the
// incident of a service it calls or is called by, and opens none alone.
func TestSupportingEvidence(t *testing.T) {
	m, err := NewManager(Options{})
	if err != nil {
		t.Fatal(err)
	}
	support := opFinding("emailservice", self(300, 8))
	support.Score.Active, support.Score.Supporting = false, true
	if ch, _ := m.Observe(window(0), []baselines.Finding{support}); len(ch) != 0 {
		t.Fatalf("supporting evidence alone: %+v, want nothing", ch)
	}
	w := window(1)
	w.Edges[graph.EdgeKey{Source: "checkoutservice", Target: "emailservice", Operation: "Send"}] = &graph.EdgeStats{Requests: 1}
	ch, _ := m.Observe(w, []baselines.Finding{opFinding("checkoutservice", self(90, 30)), support})
	if len(ch) != 1 || ch[0].Kind != "opened" {
		t.Fatalf("changes %+v, want one incident opened", ch)
	}
	if !slices.Contains(ch[0].Incident.Services, "emailservice") || len(ch[0].Incident.Anomalies) != 2 {
		t.Fatalf("incident %+v: want emailservice's evidence in it", ch[0].Incident)
	}
}

// TestLoadStateWithoutKinds: a checkpoint written before feature scores
// carried their kind still ranks as before once loaded.
func TestLoadStateWithoutKinds(t *testing.T) {
	m, err := NewManager(Options{Quiet: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := window(0)
	w.Edges[graph.EdgeKey{Source: "checkoutservice", Target: "paymentservice", Operation: "op"}] = &graph.EdgeStats{}
	p50 := baseline.FeatureScore{Name: "p50", Kind: graph.KindP50, Current: 250, Expected: 50, Z: 12, Counts: true}
	if _, err := m.Observe(w, []baselines.Finding{opFinding("checkoutservice", p50), opFinding("paymentservice", self(200, 1))}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	// Rewrite it as an older build did: no kinds.
	var st managerState
	if err := gob.NewDecoder(&buf).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Internal {
		for _, o := range in.Obs {
			for k := range o.Score.Features {
				o.Score.Features[k].Kind = 0
			}
		}
	}
	buf.Reset()
	if err := gob.NewEncoder(&buf).Encode(&st); err != nil {
		t.Fatal(err)
	}
	again, err := NewManager(Options{Quiet: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.LoadState(&buf); err != nil {
		t.Fatal(err)
	}
	// A new window of checkoutservice re-ranks the incident, paymentservice
	// from its loaded observation.
	if _, err := again.Observe(window(1), []baselines.Finding{opFinding("checkoutservice", p50)}); err != nil {
		t.Fatal(err)
	}
	open := again.List(Open, time.Time{}, time.Time{})
	if len(open) != 1 || len(open[0].Suspects) == 0 || open[0].Suspects[0].Service != "paymentservice" || open[0].Suspects[0].Kind != rank.SuspectLatency {
		t.Fatalf("after loading a checkpoint without kinds: %+v", open)
	}
	if s := open[0].Suspects[0].Summary; !strings.Contains(s, "in its own code") {
		t.Errorf("summary %q: want the self time named", s)
	}
}

// TestClientCallsNameTheirCallee: a client operation whose answered calls
// waited longer blames the time between it and the service that answered;
// calls nobody answered, all or some of them, are no such evidence.
func TestClientCallsNameTheirCallee(t *testing.T) {
	op := graph.OpKey{Service: "frontend", Operation: "op"}
	for _, tc := range []struct{ answered, unanswered bool }{{true, false}, {false, true}, {true, true}} {
		answered := tc.answered && !tc.unanswered
		m, err := NewManager(Options{Quiet: 3})
		if err != nil {
			t.Fatal(err)
		}
		w := window(0)
		w.ClientOps[op] = true
		if tc.answered {
			w.Callees[op] = "checkoutservice"
		}
		w.Unanswered[op] = tc.unanswered
		ch, err := m.Observe(w, []baselines.Finding{opFinding("frontend", self(426, 4))})
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) != 1 {
			t.Fatalf("%+v: changes %+v, want an incident", tc, ch)
		}
		sus := ch[0].Incident.Suspects
		switch {
		case answered && (len(sus) == 0 || sus[0].Service != "checkoutservice" || sus[0].Kind != rank.SuspectNetwork || sus[0].Caller != "frontend"):
			t.Errorf("answered calls: suspects %+v, want the network between frontend and checkoutservice first", sus)
		case !answered && len(sus) != 0:
			t.Errorf("%+v: suspects %+v, want none from a client call's wait", tc, sus)
		}
	}
}

// TestOperationEvidenceHasExemplars: an operation's evidence carries trace
// ids of the calls into it, as an edge's does, callers in name order.
func TestOperationEvidenceHasExemplars(t *testing.T) {
	m, err := NewManager(Options{Quiet: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := window(0)
	for i, caller := range []string{"frontend", "checkoutservice"} {
		w.Edges[graph.EdgeKey{Source: caller, Target: "paymentservice", Operation: "op"}] = &graph.EdgeStats{
			Exemplars: []graph.Exemplar{{TraceID: span.TraceID{byte(i + 1)}}, {TraceID: span.TraceID{byte(i + 1), 1}}}}
	}
	ch, err := m.Observe(w, []baselines.Finding{opFinding("paymentservice", self(200, 1))})
	if err != nil || len(ch) != 1 || len(ch[0].Incident.Suspects) == 0 {
		t.Fatalf("changes %+v, %v", ch, err)
	}
	ev := ch[0].Incident.Suspects[0].Evidence[0]
	want := []string{span.TraceID{2}.String(), span.TraceID{2, 1}.String(), span.TraceID{1}.String()}
	if !slices.Equal(ev.Exemplars, want) {
		t.Errorf("exemplars %v, want %v (checkoutservice's calls first, three at most)", ev.Exemplars, want)
	}
}
