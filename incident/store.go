package incident

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/causeway/causeway/statefs"
)

// Store keeps incidents in one JSON file, rewritten atomically (temporary
// file, fsync, rename) on every change: small, inspectable with jq, and a
// crash leaves the previous version whole.
type Store struct {
	Path string
	// FS is where the file is written; nil: the real file system.
	FS statefs.FS
}

type storeFile struct {
	Version   int         `json:"version"`
	Incidents []*Incident `json:"incidents"`
}

const storeVersion = 1

// Load reads the incidents; a missing file holds none.
func (s *Store) Load() ([]*Incident, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load incidents: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("load incidents from %s: %w", s.Path, err)
	}
	if f.Version != storeVersion {
		return nil, fmt.Errorf("load incidents from %s: version %d, this build reads %d", s.Path, f.Version, storeVersion)
	}
	return f.Incidents, nil
}

// Save writes the incidents.
func (s *Store) Save(incidents []*Incident) error {
	b, err := json.Marshal(storeFile{Version: storeVersion, Incidents: incidents})
	if err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	if err := statefs.Or(s.FS).WriteFile(s.Path, b); err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	return nil
}
