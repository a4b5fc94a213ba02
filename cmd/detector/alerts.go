package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/causeway/causeway/alert"
)

// startAlerts opens the alert outbox (in the state directory, or a
// temporary one that does not outlive the process) and queues what a
// crash kept from being sent. The returned func removes a temporary
// outbox.
func (m *Main) startAlerts(cfg Config, apiURL string) (func(), error) {
	stop := func() {}
	dir := filepath.Join(cfg.StateDir, "alerts")
	if cfg.StateDir == "" {
		tmp, err := os.MkdirTemp("", "causeway-alerts-")
		if err != nil {
			return stop, fmt.Errorf("alerts: %w", err)
		}
		dir, stop = tmp, func() { os.RemoveAll(tmp) }
		m.Log.Warn("alert outbox is in a temporary directory: undelivered events do not survive a restart without --state-dir", "dir", tmp)
	}
	ac := cfg.Alerts
	if ac.ExternalURL == "" {
		ac.ExternalURL = apiURL
	}
	opt := alert.Options{Dir: dir, Incidents: m.incidents, Log: m.Log, Registerer: m.reg, FS: m.FS}
	if m.node != nil {
		// Every member computes the events; the leader sends them and
		// records each delivery for the others.
		opt.Standby, opt.OnDelivered = true, m.node.Acknowledge
	}
	n, err := alert.New(ac, opt)
	if err != nil {
		stop()
		return func() {}, err
	}
	n.Reconcile(m.incidents.List("", time.Time{}, time.Time{}))
	m.notifier = n
	for _, r := range n.Status() {
		m.Log.Info("alert receiver", "name", r.Name, "kind", r.Kind, "url", r.URL, "pending", r.Pending)
	}
	return stop, nil
}
