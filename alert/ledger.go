package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/causeway/causeway/incident"
)

const (
	ledgerFile    = "ledger.json"
	ledgerVersion = 1
)

// ledger remembers, per incident, what its receivers have been sent: the
// routing that sticks to the incident, the last revision announced and
// when (for the update interval), and the last event while it is open
// (Alertmanager receivers re-post it). It is what a restart compares the
// restored incidents against.
type ledger struct {
	Version   int                     `json:"version"`
	Incidents map[string]*ledgerEntry `json:"incidents"`
}

type ledgerEntry struct {
	Receivers  []string          `json:"receivers"`
	State      incident.State    `json:"state"`
	Revision   int               `json:"revision"`
	Severity   incident.Severity `json:"severity"`
	TopSuspect string            `json:"top_suspect,omitempty"`
	SentAt     time.Time         `json:"sent_at"` // event time of the last event
	Held       bool              `json:"held,omitempty"`
	Last       *Event            `json:"last,omitempty"`
}

func loadLedger(path string) (*ledger, error) {
	l := &ledger{Version: ledgerVersion, Incidents: map[string]*ledgerEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read alert ledger: %w", err)
	}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("read alert ledger %s: %w", path, err)
	}
	if l.Version != ledgerVersion {
		return nil, fmt.Errorf("read alert ledger %s: version %d, this build reads %d", path, l.Version, ledgerVersion)
	}
	if l.Incidents == nil {
		l.Incidents = map[string]*ledgerEntry{}
	}
	return l, nil
}

// held lists the incidents with an update waiting, in a stable order.
func (l *ledger) held() []string {
	var ids []string
	for id, le := range l.Incidents {
		if le.Held {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// trim forgets the longest-resolved incidents beyond keep.
func (l *ledger) trim(keep int) {
	if len(l.Incidents) <= keep {
		return
	}
	var resolved []string
	for id, le := range l.Incidents {
		if le.State == incident.Resolved {
			resolved = append(resolved, id)
		}
	}
	slices.SortFunc(resolved, func(a, b string) int { return l.Incidents[a].SentAt.Compare(l.Incidents[b].SentAt) })
	for _, id := range resolved {
		if len(l.Incidents) <= keep {
			return
		}
		delete(l.Incidents, id)
	}
}
