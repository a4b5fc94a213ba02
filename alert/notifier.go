package alert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway/causeway/incident"
	"github.com/causeway/causeway/statefs"
)

// Doer sends an HTTP request; *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Options are a Notifier's surroundings.
type Options struct {
	// Dir holds the outbox: one directory per receiver and the ledger of
	// what each incident's receivers have been sent. Required.
	Dir string
	// Incidents gives an incident's current state, for updates held back
	// by the update interval. Required when Config has receivers.
	Incidents interface {
		Get(id string) (incident.Incident, bool)
	}
	Log        *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: not exported
	Client     Doer                  // nil: an http.Client without timeout (each attempt has one)
	Now        func() time.Time      // wall clock; nil: time.Now
	// Standby starts the notifier inactive: events are queued, not sent,
	// until SetActive(true). Detectors in a fleet all compute the events;
	// only the leader sends them.
	Standby bool
	// OnDelivered, when set, is called from a send loop after each event
	// a receiver took, so a fleet's leader can tell the others.
	OnDelivered func(receiver, eventID string)
	// FS is where the outbox and ledger files are written; nil: the real
	// file system. Tests give it a disk that fails or is slow.
	FS statefs.FS
}

// Notifier turns incident changes into events and delivers them. Observe
// runs on the pipeline's goroutine; Run runs the send loops; Status and
// Pending may be called from any goroutine.
type Notifier struct {
	cfg     Config
	opt     Options
	log     *slog.Logger
	m       *metrics
	senders []*sender
	redact  *strings.Replacer

	mu          sync.Mutex
	ledger      *ledger
	ledgerDirty bool // the last ledger write failed
	flog        *statefs.FaultLog

	progressMu sync.Mutex
	progress   chan struct{} // closed and replaced whenever a delivery attempt ends or activity changes
	active     atomic.Bool

	ackMu    sync.Mutex
	acked    map[string]bool // receiver + "\x00" + event id, delivered by another member
	ackOrder []string

	in *inbox // Offer's queue
}

// New opens the outbox in opt.Dir, taking up the deliveries an earlier run
// left. cfg must have been resolved (Config.Resolve).
func New(cfg Config, opt Options) (*Notifier, error) {
	cfg = cfg.WithDefaults()
	if opt.Dir == "" {
		return nil, errors.New("alert: no outbox directory")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Client == nil {
		opt.Client = &http.Client{}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	n := &Notifier{cfg: cfg, opt: opt, log: opt.Log, m: newMetrics(opt.Registerer), progress: make(chan struct{}), acked: map[string]bool{}, in: newInbox(),
		flog: &statefs.FaultLog{Log: opt.Log, What: "write alert outbox", Now: opt.Now}}
	n.active.Store(!opt.Standby)
	var secrets []string
	for i := range cfg.Receivers {
		for _, s := range cfg.Receivers[i].secrets() {
			secrets = append(secrets, s, "<redacted>")
		}
	}
	n.redact = strings.NewReplacer(secrets...)
	l, err := loadLedger(filepath.Join(opt.Dir, ledgerFile))
	if err != nil {
		// Without the ledger, a restart may repeat events (with their
		// ids) but never lose one: the incidents are reconciled.
		aside := filepath.Join(opt.Dir, ledgerFile+".unreadable")
		_ = os.Rename(filepath.Join(opt.Dir, ledgerFile), aside)
		n.log.Error("alert ledger unreadable; starting a new one", "moved_to", aside, "err", err)
		l = &ledger{Version: ledgerVersion, Incidents: map[string]*ledgerEntry{}}
	}
	n.ledger = l
	for i := range cfg.Receivers {
		r := &cfg.Receivers[i]
		q, bad, err := openQueue(filepath.Join(opt.Dir, "outbox", r.Name), opt.FS, cfg.QueueSize)
		if err != nil {
			return nil, err
		}
		for _, err := range bad {
			n.m.outboxErr.Inc()
			n.log.Error("outbox entry unreadable; set aside", "receiver", r.Name, "err", err)
		}
		if depth, _ := q.stats(); depth > 0 {
			n.log.Info("undelivered alert events from an earlier run", "receiver", r.Name, "events", depth)
		}
		n.senders = append(n.senders, &sender{n: n, r: r, q: q})
	}
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(newQueueCollector(n))
	}
	return n, nil
}

func (n *Notifier) now() time.Time { return n.opt.Now() }

// Receivers reports whether any receiver is configured.
func (n *Notifier) Receivers() int { return len(n.senders) }

// Observe turns a window's incident changes into events, writes them to the
// outbox of each receiver they route to and wakes the send loops. at is the
// window's end (event time), the clock of the update interval. It does not
// wait for delivery.
func (n *Notifier) Observe(at time.Time, changes []incident.Change) {
	if len(n.senders) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	dirty := false
	for _, c := range changes {
		inc := c.Incident
		le := n.ledger.Incidents[inc.ID]
		switch {
		case le != nil && le.Revision >= inc.Revision && (le.State == incident.Resolved || inc.State == incident.Open):
			continue // announced before (a restart re-deriving incidents)
		case c.Kind == incident.ChangeOpened || (c.Kind == incident.ChangeUpdated && le == nil):
			n.emit(Opened, &inc)
		case c.Kind == incident.ChangeUpdated && inc.UpdatedAt.Sub(le.SentAt) < n.cfg.UpdateInterval:
			if !le.Held {
				n.m.held.Inc()
			}
			le.Held = true
		case c.Kind == incident.ChangeUpdated:
			n.emit(Updated, &inc)
		case c.Kind == incident.ChangeResolved && le != nil && le.State == incident.Open:
			n.emit(Resolved, &inc)
		default:
			continue // resolved but never announced: nothing to take back
		}
		dirty = true
	}
	for _, id := range n.ledger.held() {
		le := n.ledger.Incidents[id]
		if at.Sub(le.SentAt) < n.cfg.UpdateInterval || n.opt.Incidents == nil {
			continue
		}
		le.Held, dirty = false, true
		if inc, ok := n.opt.Incidents.Get(id); ok && inc.State == incident.Open && inc.Revision > le.Revision {
			n.emit(Updated, &inc)
		}
	}
	if dirty || n.ledgerDirty {
		n.saveLedger()
	}
}

// Reconcile compares the incidents (as restored at start) with what was
// sent before a restart and queues what a crash kept from being queued:
// an opening never announced, a resolve never sent, an update still due.
func (n *Notifier) Reconcile(incidents []incident.Incident) {
	if len(n.senders) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	slices.SortStableFunc(incidents, func(a, b incident.Incident) int { return a.OpenedAt.Compare(b.OpenedAt) })
	dirty := false
	for i := range incidents {
		inc := &incidents[i]
		le := n.ledger.Incidents[inc.ID]
		switch {
		case le == nil && inc.State == incident.Open:
			n.log.Info("alerting on an incident not announced before the restart", "incident", inc.ID)
			n.emit(Opened, inc)
		case le != nil && le.State == incident.Open && inc.State == incident.Resolved:
			n.emit(Resolved, inc)
		case le != nil && inc.State == incident.Open && inc.Revision > le.Revision && !le.Held:
			le.Held = true
		default:
			continue
		}
		dirty = true
	}
	if dirty {
		n.saveLedger()
	}
}

// emit builds the event, queues it for its receivers and records it in the
// ledger. Call with n.mu held.
func (n *Notifier) emit(kind Kind, inc *incident.Incident) {
	e := newEvent(kind, inc, n.cfg.ExternalURL, n.cfg.GrafanaURL)
	le := n.ledger.Incidents[inc.ID]
	if le == nil {
		le = &ledgerEntry{}
		n.ledger.Incidents[inc.ID] = le
	} else if kind != Opened && (le.Severity != e.Severity || le.TopSuspect != e.TopSuspect()) {
		e.Previous = &Previous{Severity: le.Severity, TopSuspect: le.TopSuspect}
	}
	now := n.now()
	for _, s := range n.senders {
		if !s.r.matches(&e) && !slices.Contains(le.Receivers, s.r.Name) {
			continue
		}
		if !slices.Contains(le.Receivers, s.r.Name) {
			le.Receivers = append(le.Receivers, s.r.Name)
		}
		if s.q.has(e.ID) || n.isAcked(s.r.Name, e.ID) { // queued before a crash, or sent by another member
			continue
		}
		dropped, err := s.q.add(e, now)
		if err != nil {
			n.m.outboxErr.Inc()
			n.flog.Failed(err, "receiver", s.r.Name, "event", e.ID, "then", "sending from memory; written when the disk works again")
		} else if !n.ledgerDirty {
			n.flog.Succeeded()
		}
		for _, d := range dropped {
			n.m.failed.WithLabelValues(s.r.Name, "dropped").Inc()
			n.log.Error("alert queue full; oldest event dropped", "receiver", s.r.Name, "event", d.Event.ID, "queue_size", n.cfg.QueueSize)
		}
	}
	n.m.events.WithLabelValues(string(kind)).Inc()
	le.State, le.Revision, le.Severity, le.TopSuspect, le.SentAt, le.Held = inc.State, inc.Revision, e.Severity, e.TopSuspect(), inc.UpdatedAt, false
	le.Last = nil
	if inc.State == incident.Open {
		le.Last = &e
	}
	n.log.Info("alert event queued", "event", e.ID, "kind", kind, "incident", inc.ID, "top_suspect", e.TopSuspect(),
		"severity", e.Severity, "receivers", le.Receivers)
}

// saveLedger writes the ledger; call with n.mu held. A failure is counted
// and the next Observe or Sync tries again.
func (n *Notifier) saveLedger() error {
	n.ledger.trim(1000)
	if err := writeFileSync(statefs.Or(n.opt.FS), filepath.Join(n.opt.Dir, ledgerFile), n.ledger); err != nil {
		n.ledgerDirty = true
		n.m.outboxErr.Inc()
		n.flog.Failed(err, "file", ledgerFile)
		return fmt.Errorf("write alert ledger: %w", err)
	}
	n.ledgerDirty = false
	return nil
}

// Sync turns what Offer queued into events, then makes durable what
// earlier writes could not (the disk was full or failing): the ledger and
// events queued in memory only. It returns nil once everything offered or
// queued so far is on disk. The detector calls it before
// each checkpoint, which commits Kafka offsets only when it succeeds.
func (n *Notifier) Sync() error {
	n.drain() // what Offer queued first
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ledgerDirty {
		if err := n.saveLedger(); err != nil {
			return err
		}
	}
	for _, s := range n.senders {
		if err := s.q.sync(); err != nil {
			n.m.outboxErr.Inc()
			n.flog.Failed(err, "receiver", s.r.Name)
			return fmt.Errorf("write alert outbox %s: %w", s.r.Name, err)
		}
	}
	n.flog.Succeeded()
	return nil
}

// Run runs one send loop per receiver, and turns what Offer queues into
// events, until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.in.wake:
				n.drain()
			}
		}
	}()
	for _, s := range n.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// signal wakes the goroutines waiting in waitUntil.
func (n *Notifier) signal() {
	n.progressMu.Lock()
	close(n.progress)
	n.progress = make(chan struct{})
	n.progressMu.Unlock()
}

// changed is closed at the next signal.
func (n *Notifier) changed() <-chan struct{} {
	n.progressMu.Lock()
	defer n.progressMu.Unlock()
	return n.progress
}

// waitUntil blocks until cond holds, checking it after every delivery
// attempt, or until ctx ends.
func (n *Notifier) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		ch := n.changed()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Drain blocks until every queued event has been delivered or given up,
// or ctx ends. Run must be running.
func (n *Notifier) Drain(ctx context.Context) error {
	return n.waitUntil(ctx, func() bool { return n.Pending() == 0 })
}

// SetActive starts or stops sending. Inactive, events are still queued
// (and removed when Acknowledge says another member delivered them).
func (n *Notifier) SetActive(on bool) {
	if n.active.Swap(on) != on {
		n.log.Info("alert sending", "active", on)
		n.signal()
	}
}

// Active reports whether the notifier sends.
func (n *Notifier) Active() bool { return n.active.Load() }

// Acknowledge records that another member delivered event id to receiver:
// it is dropped from the queue, and not queued should it be raised here
// later. The most recent 100000 acknowledgements are remembered.
func (n *Notifier) Acknowledge(receiver, id string) {
	k := receiver + "\x00" + id
	n.ackMu.Lock()
	if !n.acked[k] {
		n.acked[k] = true
		n.ackOrder = append(n.ackOrder, k)
		if len(n.ackOrder) > 100000 {
			delete(n.acked, n.ackOrder[0])
			n.ackOrder = n.ackOrder[1:]
		}
	}
	n.ackMu.Unlock()
	for _, s := range n.senders {
		if s.r.Name == receiver {
			s.q.remove(id)
		}
	}
	n.signal()
}

func (n *Notifier) isAcked(receiver, id string) bool {
	n.ackMu.Lock()
	defer n.ackMu.Unlock()
	return n.acked[receiver+"\x00"+id]
}

// Pending is the number of undelivered events over all receivers.
func (n *Notifier) Pending() int {
	total := 0
	for _, s := range n.senders {
		d, _ := s.q.stats()
		total += d
	}
	return total
}

// ReceiverStatus is what the API shows of a receiver: never a secret.
type ReceiverStatus struct {
	Name                string     `json:"name"`
	Kind                string     `json:"kind"`
	URL                 string     `json:"url"`
	Match               any        `json:"match,omitempty"`
	Pending             int        `json:"pending"`
	OldestUndelivered   *time.Time `json:"oldest_undelivered_at,omitempty"`
	LastDeliveredAt     *time.Time `json:"last_delivered_at,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	LastErrorAt         *time.Time `json:"last_error_at,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

// Status describes every receiver.
func (n *Notifier) Status() []ReceiverStatus {
	out := make([]ReceiverStatus, 0, len(n.senders))
	for _, s := range n.senders {
		st := ReceiverStatus{Name: s.r.Name, Kind: s.r.Kind, URL: s.r.PublicURL()}
		if len(s.r.Match) > 0 {
			st.Match = s.r.Match
		}
		depth, oldest := s.q.stats()
		st.Pending = depth
		if depth > 0 {
			st.OldestUndelivered = &oldest
		}
		s.mu.Lock()
		if !s.lastOK.IsZero() {
			t := s.lastOK
			st.LastDeliveredAt = &t
		}
		if s.lastErr != "" {
			t := s.lastErrAt
			st.LastError, st.LastErrorAt = s.lastErr, &t
		}
		st.ConsecutiveFailures = s.failures
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Test sends a test event to the named receiver now, once, bypassing the
// outbox, and returns the error of the attempt.
func (n *Notifier) Test(ctx context.Context, name string) error {
	i := slices.IndexFunc(n.senders, func(s *sender) bool { return s.r.Name == name })
	if i < 0 {
		var names []string
		for _, s := range n.senders {
			names = append(names, s.r.Name)
		}
		return fmt.Errorf("no receiver %q (have: %s)", name, strings.Join(names, ", "))
	}
	s := n.senders[i]
	now := n.now()
	host, _ := os.Hostname()
	e := Event{Version: PayloadVersion, ID: fmt.Sprintf("test/%d", now.UnixNano()), Kind: Test,
		IncidentID: fmt.Sprintf("test-%d", now.Unix()), State: incident.Open, Severity: incident.Warning, Time: now, OpenedAt: now,
		Services: []string{}, Suspects: []Suspect{}}
	e.Title = "Test: Causeway can reach receiver " + name
	if host != "" {
		e.Title += " from " + host
	}
	if out, _, err := s.deliver(ctx, &e); out != delivered {
		return err
	}
	if s.r.Kind == KindPagerDuty || s.r.Kind == KindAlertmanager {
		// Take the test alert back so it does not stay open.
		t := n.now()
		e.ID, e.Kind, e.State, e.ResolvedAt = e.ID+"/resolved", Resolved, incident.Resolved, &t
		if out, _, err := s.deliver(ctx, &e); out != delivered {
			return fmt.Errorf("resolve the test alert: %w", err)
		}
	}
	return nil
}

// sender is one receiver's send loop.
type sender struct {
	n *Notifier
	r *Receiver
	q *queue

	mu        sync.Mutex
	lastOK    time.Time
	lastErr   string
	lastErrAt time.Time
	failures  int
}

// run delivers the queue in order until ctx ends. An event that fails with
// a retryable error blocks the ones behind it, which keeps the events of
// an incident in order.
func (s *sender) run(ctx context.Context) {
	var resend <-chan time.Time
	if s.r.Kind == KindAlertmanager {
		t := time.NewTicker(s.n.cfg.ResendInterval)
		defer t.Stop()
		resend = t.C
	}
	attempt := 0
	for {
		if !s.n.active.Load() {
			if err := s.n.waitUntil(ctx, s.n.active.Load); err != nil {
				return
			}
			continue
		}
		d := s.q.head()
		if d == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.q.wake:
			case <-resend:
				s.refresh(ctx)
			case <-s.n.changed():
			}
			continue
		}
		out, wait, err := s.deliver(ctx, &d.Event)
		if ctx.Err() != nil {
			return // the event stays in the outbox for the next run
		}
		attempt++
		log := s.n.log.With("receiver", s.r.Name, "kind", s.r.Kind, "event", d.Event.ID, "incident", d.Event.IncidentID, "attempt", attempt)
		switch {
		case out == delivered:
			s.n.m.sent.WithLabelValues(s.r.Name).Inc()
			if s.n.opt.OnDelivered != nil {
				s.n.opt.OnDelivered(s.r.Name, d.Event.ID)
			}
			log.Info("alert delivered")
			s.finish(d, log)
			attempt = 0
			continue
		case out == rejected:
			s.n.m.failed.WithLabelValues(s.r.Name, "rejected").Inc()
			log.Error("alert rejected by receiver; not retried", "err", err)
			s.finish(d, log)
			attempt = 0
			continue
		case s.n.now().Sub(d.EnqueuedAt) > s.n.cfg.MaxAge:
			s.n.m.failed.WithLabelValues(s.r.Name, "expired").Inc()
			log.Error("alert given up after max_age", "max_age", s.n.cfg.MaxAge, "err", err)
			s.finish(d, log)
			// The receiver is still failing: the next event goes on
			// with the backoff reached, not from its start.
			continue
		}
		s.n.m.retried.WithLabelValues(s.r.Name, retryReason(err)).Inc()
		if attempt == 1 {
			log.Warn("alert delivery failed; retrying", "err", err)
		}
		wait = max(wait, s.backoff(attempt))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *sender) finish(d *delivery, log *slog.Logger) {
	if err := s.q.done(d); err != nil {
		s.n.m.outboxErr.Inc()
		log.Error("remove delivered event from outbox", "err", err)
	}
	s.n.signal()
}

// backoff is the wait before retry number attempt: exponential from
// Backoff up to MaxBackoff, with jitter over its upper half.
func (s *sender) backoff(attempt int) time.Duration {
	d := s.n.cfg.Backoff
	for i := 1; i < attempt && d < s.n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.n.cfg.MaxBackoff)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// errRetry marks errors from responses, to tell them from network errors.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func retryReason(err error) string {
	var he *httpError
	if errors.As(err, &he) {
		if he.code == http.StatusTooManyRequests {
			return "http_429"
		}
		return "http_5xx"
	}
	return "network"
}

// deliver makes one attempt. The error never holds a secret.
func (s *sender) deliver(ctx context.Context, e *Event) (outcome, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, s.n.cfg.Timeout)
	defer cancel()
	now := s.n.now()
	req, err := s.r.request(actx, e, now, s.n.cfg.ResendInterval)
	if err != nil {
		s.failed(err)
		return rejected, 0, err
	}
	resp, err := s.n.opt.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("post %s: %w", s.r.PublicURL(), ue.Err) // ue.URL may be the secret
		}
		err = errors.New(s.n.redact.Replace(err.Error()))
		s.failed(err)
		return retry, 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	out, wait := classify(resp, now)
	if out == delivered {
		s.mu.Lock()
		s.lastOK, s.failures = now, 0
		s.mu.Unlock()
		return delivered, 0, nil
	}
	msg := fmt.Sprintf("post %s: HTTP %d", s.r.PublicURL(), resp.StatusCode)
	if b := strings.TrimSpace(string(snippet)); b != "" {
		msg += ": " + truncate(strings.ToValidUTF8(b, "?"), 200)
	}
	err = &httpError{code: resp.StatusCode, msg: s.n.redact.Replace(msg)}
	s.failed(err)
	return out, wait, err
}

func (s *sender) failed(err error) {
	s.mu.Lock()
	s.lastErr, s.lastErrAt = err.Error(), s.n.now()
	s.failures++
	s.mu.Unlock()
	s.n.signal()
}

// refresh re-posts the incidents firing at this Alertmanager receiver, so
// their endsAt keeps moving ahead of now.
func (s *sender) refresh(ctx context.Context) {
	s.n.mu.Lock()
	var firing []Event
	for _, le := range s.n.ledger.Incidents {
		if le.State == incident.Open && le.Last != nil && slices.Contains(le.Receivers, s.r.Name) {
			e := *le.Last
			e.Previous = nil
			firing = append(firing, e)
		}
	}
	s.n.mu.Unlock()
	for _, e := range firing {
		if out, _, err := s.deliver(ctx, &e); out != delivered {
			s.n.m.resent.WithLabelValues(s.r.Name, "error").Inc()
			s.n.log.Debug("re-post firing alert", "receiver", s.r.Name, "incident", e.IncidentID, "err", err)
			continue
		}
		s.n.m.resent.WithLabelValues(s.r.Name, "ok").Inc()
	}
}
