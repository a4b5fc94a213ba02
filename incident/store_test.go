package incident

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/causeway/causeway/statefs"
)

// TestStoreWritesInBackground: a save on a slow disk returns before the
// write ends; saves made meanwhile are coalesced into one write of the
// newest version; Flush waits for it; each write's result reaches
// Written, failures included.
func TestStoreWritesInBackground(t *testing.T) {
	disk := &statefs.Faulty{}
	var mu sync.Mutex
	var results []error
	s := &Store{Path: filepath.Join(t.TempDir(), "incidents.json"), FS: disk, Written: func(err error) {
		mu.Lock()
		results = append(results, err)
		mu.Unlock()
	}}
	written := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), results...)
	}
	release := disk.Slow()
	for i := range 5 { // the first write blocks; the other four wait as one
		if err := s.Save([]*Incident{{ID: string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := written(); len(got) != 0 {
		t.Fatalf("%d writes ended while the disk held them", len(got))
	}
	release()
	s.Flush()
	// Two writes (the first version, then the newest), or one if the
	// writer had not yet taken the first when the others came.
	got := written()
	if len(got) < 1 || len(got) > 2 || got[0] != nil || got[len(got)-1] != nil {
		t.Fatalf("writes after release: %v, want one or two that worked", got)
	}
	loaded, err := s.Load()
	if err != nil || len(loaded) != 1 || loaded[0].ID != "e" {
		t.Fatalf("loaded %+v, %v; want the newest version", loaded, err)
	}

	disk.Fail(statefs.ErrNoSpace)
	if err := s.Save(nil); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	if again := written(); len(again) != len(got)+1 || !errors.Is(again[len(got)], statefs.ErrNoSpace) {
		t.Fatalf("a write to a full disk reported %v", again)
	}
}
