package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/causeway/causeway/alert"
)

// eventHook is on-call's webhook: it counts deliveries per event id and
// passes opened and resolved events on.
type eventHook struct {
	*httptest.Server
	opened, resolved chan alert.Event

	mu     sync.Mutex
	events map[string]int
}

func newEventHook(t *testing.T) *eventHook {
	h := &eventHook{opened: make(chan alert.Event, 16), resolved: make(chan alert.Event, 16), events: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Error(err)
		}
		h.mu.Lock()
		h.events[e.ID]++
		h.mu.Unlock()
		switch e.Kind {
		case alert.Opened:
			h.opened <- e
		case alert.Resolved:
			h.resolved <- e
		}
	}))
	return h
}

// checkOnce fails the test for every event delivered more than once.
func (h *eventHook) checkOnce(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.events {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}
