package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
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
