package incident

import (
	"encoding/gob"
	"fmt"
	"io"

	"github.com/causeway/causeway/graph"
	"github.com/causeway/causeway/graph/baselines"
	"github.com/causeway/causeway/graph/rank"
)

// The manager's state as a checkpoint holds it: the incidents and what
// ranking and resolving them keeps beside the fields on-call sees (quiet
// windows, the topology seen, each anomaly's latest observation), so a
// restarted detector ranks and resolves them exactly as one that never
// stopped. gob, not JSON: scores may be NaN or infinite.
const stateVersion = 1

type managerState struct {
	Version   int
	Incidents []*Incident
	Internal  []incidentInternal // parallel to Incidents
	Services  []string
}

type incidentInternal struct {
	Quiet    int
	Topology *rank.Topology
	Pairs    [][2]string
	Obs      []rank.Observation // parallel to Anomalies
}

// SaveState writes every incident with the state behind it. It may be
// called from any goroutine; it waits for a running Observe.
func (m *Manager) SaveState(w io.Writer) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := managerState{Version: stateVersion, Incidents: m.incidents}
	for _, inc := range m.incidents {
		in := incidentInternal{Quiet: inc.quiet, Topology: inc.topo}
		for p := range inc.pairs {
			in.Pairs = append(in.Pairs, p)
		}
		for _, a := range inc.Anomalies {
			in.Obs = append(in.Obs, a.obs)
		}
		st.Internal = append(st.Internal, in)
	}
	for s := range m.services {
		st.Services = append(st.Services, s)
	}
	if err := gob.NewEncoder(w).Encode(&st); err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	return nil
}

// LoadState replaces the incidents with those SaveState wrote. Call it
// before the first Observe.
func (m *Manager) LoadState(r io.Reader) error {
	var st managerState
	if err := gob.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("load incidents: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("load incidents: version %d, this build reads %d", st.Version, stateVersion)
	}
	if len(st.Internal) != len(st.Incidents) {
		return fmt.Errorf("load incidents: %d incidents, state for %d", len(st.Incidents), len(st.Internal))
	}
	byID := make(map[string]*Incident, len(st.Incidents))
	for i, inc := range st.Incidents {
		in := st.Internal[i]
		if len(in.Obs) != len(inc.Anomalies) {
			return fmt.Errorf("load incidents: %s has %d anomalies, %d observations", inc.ID, len(inc.Anomalies), len(in.Obs))
		}
		inc.quiet, inc.topo = in.Quiet, in.Topology
		if inc.topo != nil {
			if inc.topo.Callees == nil {
				inc.topo.Callees = map[string]int{}
			}
			if inc.topo.Callers == nil {
				inc.topo.Callers = map[string]int{}
			}
			inc.pairs = make(map[[2]string]bool, len(in.Pairs))
			for _, p := range in.Pairs {
				inc.pairs[p] = true
			}
		}
		for j := range inc.Anomalies {
			// Checkpoints written before scores carried their kind of
			// feature name it only.
			for k, fs := range in.Obs[j].Score.Features {
				if fs.Kind == 0 {
					in.Obs[j].Score.Features[k].Kind = graph.KindNamed(fs.Name)
				}
			}
			inc.Anomalies[j].obs = in.Obs[j]
			// Checkpoints written before anomalies carried their series
			// typed: it is that of the observation.
			if f := in.Obs[j].Finding; inc.Anomalies[j].SeriesID.Kind == "" && (f.Edge != nil || f.Op != nil) {
				inc.Anomalies[j].SeriesID = baselines.SeriesOf(f)
			}
		}
		if inc.Services == nil {
			inc.Services = []string{}
		}
		if inc.Suspects == nil {
			inc.Suspects = []rank.Suspect{}
		}
		byID[inc.ID] = inc
	}
	services := make(map[string]bool, len(st.Services))
	for _, s := range st.Services {
		services[s] = true
	}
	m.mu.Lock()
	m.incidents, m.byID, m.services = st.Incidents, byID, services
	m.mu.Unlock()
	return nil
}
