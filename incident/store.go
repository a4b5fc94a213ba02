package incident

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Store keeps incidents in one JSON file, rewritten atomically (temporary
// file, fsync, rename) on every change: small, inspectable with jq, and a
// crash leaves the previous version whole.
type Store struct {
	Path string
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
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	f, err := os.CreateTemp(dir, ".incidents-*")
	if err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save incidents: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save incidents: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	if err := os.Rename(f.Name(), s.Path); err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	return nil
}
