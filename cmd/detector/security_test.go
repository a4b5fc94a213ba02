package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const apiToken = "api-t0ken-3f9a41c7"

// TestRequireToken: any listen address reachable from another host needs a
// token; loopback addresses and names resolving only to them do not.
func TestRequireToken(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "local.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		case "mixed.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.7")}, nil
		case "mapped.test":
			return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	for _, tc := range []struct {
		listen string
		token  bool
		want   string // "" means allowed
	}{
		{"127.0.0.1:8080", false, ""},
		{"127.0.0.2:8080", false, ""},
		{"[::1]:8080", false, ""},
		{"localhost:8080", false, ""},
		{"local.test:8080", false, ""},
		{"mapped.test:8080", false, ""},
		{"0.0.0.0:8080", false, "0.0.0.0 is not a loopback address"},
		{"[::]:8080", false, ":: is not a loopback address"},
		{":8080", false, "every interface"},
		{"10.1.2.3:8080", false, "10.1.2.3 is not a loopback address"},
		{"[2001:db8::1]:8080", false, "2001:db8::1 is not a loopback address"},
		{"mixed.test:8080", false, "resolves to 10.0.0.7"},
		{"unknown.test:8080", false, "resolve unknown.test"},
		{"0.0.0.0:8080", true, ""},
		{"mixed.test:8080", true, ""},
	} {
		err := requireToken(context.Background(), tc.listen, tc.token, lookup)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s (token %v): %v, want allowed", tc.listen, tc.token, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s (token %v): %v, want an error mentioning %q", tc.listen, tc.token, err, tc.want)
		case err != nil && tc.want != "resolve unknown.test" && !strings.HasPrefix(err.Error(), "api.token: required"):
			t.Errorf("%s: error %q does not name api.token", tc.listen, err)
		}
	}
}

// TestRunRefusesOpenListener: `detector run` will not start on a
// non-loopback address without a token, naming the field, and starts
// with CAUSEWAY_API_TOKEN set.
func TestRunRefusesOpenListener(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:8080"}, nil, "api.token: required when the API listens beyond this host (listen 0.0.0.0:8080"},
		{[]string{"--listen", "[::]:8080"}, nil, "api.token: required"},
		{[]string{"--config", "testdata/api.yaml", "--listen", ":8080"}, nil, ""}, // the file sets api.token
		{[]string{"--listen", "0.0.0.0:8080"}, map[string]string{"CAUSEWAY_API_TOKEN": apiToken}, ""},
		{[]string{"--config", "testdata/api-bad.yaml"}, nil, "api.tls: set both cert_file and key_file"},
		{[]string{"--config", "testdata/api-inline-token.yaml"}, nil, "never written inline"},
		{[]string{"--tls-cert", "c.pem"}, nil, "api.tls: set both"},
	} {
		cfg, err := parseRunFlags(tc.args, func(k string) string { return tc.env[k] })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "inline-s3cr3t") {
			t.Errorf("error shows the inline token: %v", err)
		}
		if tc.env != nil && err == nil && cfg.API.Token.Env != "CAUSEWAY_API_TOKEN" {
			t.Errorf("CAUSEWAY_API_TOKEN did not set api.token: %+v", cfg.API.Token)
		}
	}
	// The file's limits reach the HTTP server; the rest keep their defaults.
	cfg, err := parseRunFlags([]string{"--config", "testdata/api.yaml"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cfg.API.server(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Token.Env != "CAUSEWAY_TEST_API_TOKEN" || cfg.API.MaxBodyBytes != 4096 || srv.ReadTimeout != 20*time.Second ||
		srv.ReadHeaderTimeout != 10*time.Second || srv.WriteTimeout != time.Minute || srv.IdleTimeout != 2*time.Minute || srv.MaxHeaderBytes != 64<<10 {
		t.Errorf("api config %+v gives server timeouts %v %v %v %v, max header %d", cfg.API, srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	// A host name is resolved when the detector starts.
	cfg = defaultConfig()
	cfg.Listen = "causeway.test:0"
	m := &Main{Config: cfg, LookupHost: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
	}}
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "api.token: required") || !strings.Contains(err.Error(), "resolves to 192.0.2.1") {
		t.Errorf("Run on a name resolving to a public address without a token: %v", err)
	}
	// A token named but empty is an error, not an open API.
	cfg.Listen = "127.0.0.1:0"
	cfg.API.Token.Env = "CAUSEWAY_API_TOKEN"
	m = &Main{Config: cfg, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background()); err == nil || err.Error() != "api.token: environment variable CAUSEWAY_API_TOKEN is empty or unset" {
		t.Errorf("Run with an unset token variable: %v", err)
	}
}

// TestAPIOverTLSWithToken starts the whole detector (embedded demo) with
// a self-signed certificate, a token and debug logging; calls it over HTTPS
// with and without the token; and checks the token is in no log line.
func TestAPIOverTLSWithToken(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	cfg := defaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.LogLevel = "debug"
	cfg.Pprof = true
	cfg.Demo.History = time.Minute
	cfg.API.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile}
	if err := cfg.envOverrides(func(k string) string { return map[string]string{"CAUSEWAY_API_TOKEN": apiToken}[k] }); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	var stdout lockedBuffer
	m := &Main{Config: cfg, Log: newLogger(&logs, cfg.LogLevel), Stdout: &stdout,
		Getenv: func(k string) string { return map[string]string{"CAUSEWAY_API_TOKEN": apiToken}[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	addr := m.Addr(ctx)
	if addr == "" {
		t.Fatalf("detector did not start: %v", <-done)
	}

	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/api/v1/graph", apiToken, 200},
		{"/api/v1/graph", "", 401},
		{"/api/v1/graph", "wrong-" + apiToken, 401},
		{"/api/v1/incidents?limit=5", apiToken, 200},
		{"/api/v1/incidents?limit=5000", apiToken, 400},
		{"/metrics", "", 401},
		{"/metrics", apiToken, 200},
		{"/debug/pprof/", "", 401},
		{"/healthz", "", 200},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s over TLS: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s (token %v): %d %.200s, want %d", tc.path, tc.token != "", resp.StatusCode, b, tc.want)
		}
		if tc.path == "/metrics" && tc.want == 200 && !bytes.Contains(b, []byte(`causeway_api_auth_failures_total{reason="invalid"} 1`)) {
			t.Errorf("the wrong token was not counted:\n%s", grepLines(string(b), "causeway_api_auth"))
		}
	}
	// Oversized headers are refused before any handler runs.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/api/v1/graph", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("X-Padding", strings.Repeat("x", 80<<10))
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("80 KiB of headers: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}
	// Plain HTTP on the TLS port gets no API answer.
	if resp, err := http.Get("http://" + addr + "/api/v1/graph"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d", resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("detector stopped with %v", err)
	}

	out := logs.String() + stdout.String()
	for _, want := range []string{"api=https://" + addr, "api_auth=true", "api request refused", "$CAUSEWAY_API_TOKEN"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q, so what the test checks did not happen:\n%s", want, out)
		}
	}
	for i, line := range strings.Split(out, "\n") {
		if strings.Contains(line, apiToken) {
			t.Errorf("line %d shows the API token: %s", i+1, line)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key
// into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "causeway test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// lockedBuffer is a bytes.Buffer the detector's goroutines may write to
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
