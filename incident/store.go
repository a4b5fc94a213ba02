package incident

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/causeway/causeway/statefs"
)

// Store keeps incidents in one JSON file, rewritten atomically (temporary
// file, fsync, rename) on every change: small, inspectable with jq, and a
// crash leaves the previous version whole. Writes happen on a goroutine of
// the store's own, so a slow or failing disk holds up neither the windows
// that change incidents nor the API; the checkpoint, which holds the
// incidents too, is what crash safety rests on.
type Store struct {
	Path string
	// FS is where the file is written; nil: the real file system.
	FS statefs.FS
	// Written, if set, is told the result of each write (nil: it
	// worked), on the writing goroutine.
	Written func(error)

	mu      sync.Mutex
	next    []byte        // the newest version not yet being written; nil: none
	writing chan struct{} // non-nil while a goroutine writes; closed when it stops
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

// Save encodes the incidents as they are now and writes them in the
// background. Versions saved while a write is under way wait, and only the
// newest of them is written next. It fails only when the incidents cannot
// be encoded; how each write went is told to Written.
func (s *Store) Save(incidents []*Incident) error {
	b, err := json.Marshal(storeFile{Version: storeVersion, Incidents: incidents})
	if err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = b
	if s.writing == nil {
		s.writing = make(chan struct{})
		go s.drain(s.writing)
	}
	return nil
}

// drain writes the newest version saved until none is left.
func (s *Store) drain(done chan struct{}) {
	for {
		s.mu.Lock()
		b := s.next
		s.next = nil
		if b == nil {
			s.writing = nil
			close(done)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		err := statefs.Or(s.FS).WriteFile(s.Path, b)
		if err != nil {
			err = fmt.Errorf("save incidents: %w", err)
		}
		if s.Written != nil {
			s.Written(err)
		}
	}
}

// Flush waits until every version saved so far has been written (or has
// failed to be): at shutdown, and in tests.
func (s *Store) Flush() {
	s.mu.Lock()
	done := s.writing
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}
