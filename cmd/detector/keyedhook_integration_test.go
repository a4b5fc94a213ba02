//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/causeway/causeway/alert"
)

// keyedHook is a webhook receiver recording events by idempotency key.
type keyedHook struct {
	*httptest.Server
	mu    sync.Mutex
	order []string // keys, first delivery order
	desc  map[string]string
	count map[string]int // deliveries per key
	bad   []string
}

func newKeyedHook() *keyedHook {
	h := &keyedHook{desc: map[string]string{}, count: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		d := fmt.Sprintf("%s %s %s top=%s", key, e.Kind, e.IncidentID, e.TopSuspect())
		h.mu.Lock()
		defer h.mu.Unlock()
		if key != e.ID {
			h.bad = append(h.bad, "key "+key+" for event "+e.ID)
		}
		if prev, ok := h.desc[key]; ok && prev != d {
			h.bad = append(h.bad, "key "+key+" reused: "+prev+" then "+d)
		}
		if h.count[key] == 0 {
			h.order = append(h.order, key)
			h.desc[key] = d
		}
		h.count[key]++
	}))
	return h
}

// events lists the distinct events received, by first delivery, with any
// inconsistency found.
func (h *keyedHook) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, k := range h.order {
		out = append(out, h.desc[k])
	}
	return append(out, h.bad...)
}

// duplicates counts deliveries beyond the first of each key.
func (h *keyedHook) duplicates() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.count {
		n += c - 1
	}
	return n
}
