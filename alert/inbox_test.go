package alert

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/statefs"
)

// stallFS is a disk whose writes wait until release is closed.
type stallFS struct{ release chan struct{} }

func (d *stallFS) WriteFile(path string, data []byte) error {
	<-d.release
	return statefs.OS{}.WriteFile(path, data)
}

// TestOfferDoesNotWaitForTheDisk: with the outbox's disk stalled, Offer
// hands windows on without waiting (fewer than InboxSize of them); once
// the disk is back, Sync returns with every offered window's events in
// the outbox, and they are delivered in window order.
func TestOfferDoesNotWaitForTheDisk(t *testing.T) {
	rec := newRecorder()
	srv := httptest.NewServer(rec)
	defer srv.Close()
	disk := &stallFS{release: make(chan struct{})}
	cfg := fast(Config{Receivers: []Receiver{{Name: "hook", Kind: KindWebhook, URL: srv.URL + "/hook"}}})
	n := start(t, cfg, Options{FS: disk}, nil)
	const windows = 10
	offered := make(chan struct{})
	go func() {
		defer close(offered)
		for i := range windows {
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			n.Offer(at, []incident.Change{{Kind: incident.ChangeOpened, Incident: inc(fmt.Sprintf("inc-%d", i), 1, incident.Open, "paymentservice", at)}})
		}
	}()
	select {
	case <-offered:
	case <-time.After(10 * time.Second):
		close(disk.release)
		t.Fatal("Offer waited for a stalled disk")
	}
	close(disk.release)
	if err := n.Sync(); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, windows)
	for i, r := range got {
		if want := fmt.Sprintf(`"inc-%d"`, i); !strings.Contains(string(r.body), want) {
			t.Errorf("delivery %d is not incident %s: %s", i, want, r.body)
		}
	}
}
