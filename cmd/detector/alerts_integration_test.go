//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/causeway/causeway/alert"
	"github.com/causeway/causeway/internal/wait"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAlertmanager runs the Debian prometheus-alertmanager on loopback
// with one do-nothing route, and returns its URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			t.Fatal("no Alertmanager: install the Debian package prometheus-alertmanager (.ci/run does)")
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte("route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	logf, _ := os.Create(filepath.Join(dir, "alertmanager.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("alertmanager log:\n%s", b)
		}
	})
	url := "http://" + addr
	wait.For(t, 20*time.Second, 250*time.Millisecond, "alertmanager ready", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}

type amGettable struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, url string) []amGettable {
	t.Helper()
	resp, err := http.Get(url + "/api/v2/alerts?filter=" + "alertname%3D%22" + alert.AlertName + "%22")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amGettable
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIntegrationAlertmanager: the demo's fault opens an incident; its
// alert shows in a real Alertmanager with the top suspect in its
// annotations, stays while the incident is open, and goes after the
// resolve.
func TestIntegrationAlertmanager(t *testing.T) {
	am := startAlertmanager(t)
	cfg := defaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Demo.Speed = 8
	cfg.Demo.Faults = []string{"latency:paymentservice:+200ms@40s/90s"}
	cfg.Alerts = alert.Config{ResendInterval: 2 * time.Second, Receivers: []alert.Receiver{{Name: "am", Kind: alert.KindAlertmanager, URL: am}}}
	m := &Main{Config: cfg, Log: quietLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("detector: %v", err)
		}
	}()
	if m.Addr(ctx) == "" {
		t.Fatal("detector did not start")
	}

	var id string
	wait.For(t, 2*time.Minute, 250*time.Millisecond, "the incident's alert in Alertmanager", func() bool {
		for _, a := range amAlerts(t, am) {
			if a.Status.State == "active" && a.Annotations["top_suspect"] == "paymentservice" {
				id = a.Labels["incident_id"]
				if a.Labels["service"] != "paymentservice" || a.Annotations["summary"] == "" || a.Annotations["suspects"] == "" {
					t.Errorf("alert %+v", a)
				}
				return true
			}
		}
		return false
	})
	t.Logf("incident %s firing in Alertmanager", id)
	wait.For(t, 2*time.Minute, 250*time.Millisecond, "the alert gone after the resolve", func() bool {
		for _, a := range amAlerts(t, am) {
			if a.Labels["incident_id"] == id {
				return false
			}
		}
		return true
	})
	inc, ok := m.incidents.Get(id)
	if !ok || inc.State != "resolved" {
		t.Errorf("incident %s after its alert went: %+v", id, inc)
	}
}

// TestIntegrationAlertsSurviveKill: the detector is killed (SIGKILL) while
// its webhook is down with an event undelivered; the next run delivers it.
func TestIntegrationAlertsSurviveKill(t *testing.T) {
	bin := buildDetector(t)
	state := t.TempDir()
	hookAddr := freeAddr(t) // nothing listens there yet
	logs := filepath.Join(t.TempDir(), "detector.log")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--listen", "127.0.0.1:0", "--state-dir", state, "--webhook-url", "http://"+hookAddr+"/hook",
			"--speed", "8", "--fault", "latency:paymentservice:+200ms@40s/10m")
		f, err := os.OpenFile(logs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logs)
			t.Logf("detector log:\n%s", b)
		}
	}()

	first := start()
	outbox := filepath.Join(state, "alerts", "outbox", "webhook")
	var queued alert.Event
	wait.For(t, 2*time.Minute, 250*time.Millisecond, "an undelivered event in the outbox", func() bool {
		files, _ := filepath.Glob(filepath.Join(outbox, "*.json"))
		if len(files) == 0 {
			return false
		}
		b, err := os.ReadFile(files[0])
		var d struct{ Event alert.Event }
		if err != nil || json.Unmarshal(b, &d) != nil {
			return false
		}
		queued = d.Event
		return true
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	t.Logf("killed with %s undelivered", queued.ID)

	got := make(chan alert.Event, 16)
	ln, err := net.Listen("tcp", hookAddr)
	if err != nil {
		t.Fatalf("receiver cannot bind %s: %v", hookAddr, err)
	}
	hook := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e alert.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Error(err)
		}
		got <- e
	}))
	hook.Listener = ln
	hook.Start()
	defer hook.Close()

	second := start()
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	select {
	case e := <-got:
		// The event queued before the kill, whichever incident it is
		// about (under heavy load the demo can open another one first).
		if e.ID != queued.ID || e.Kind != queued.Kind || e.IncidentID != queued.IncidentID {
			t.Errorf("after restart the webhook got %+v, want %s", e, queued.ID)
		}
	case <-time.After(time.Minute):
		t.Fatal(fmt.Sprintf("%s not delivered after the restart", queued.ID))
	}
}
