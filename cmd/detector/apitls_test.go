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
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/internal/syncbuf"
)

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
	var logs syncbuf.Buffer
	var stdout syncbuf.Buffer
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

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
