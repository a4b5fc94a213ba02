package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/causeway/causeway/alert"
)

// APIConfig secures and bounds the HTTP API (docs/operations.md,
// "Security").
type APIConfig struct {
	// Token is the bearer token every request but /healthz and /readyz
	// must carry, read from {env: NAME} or {file: PATH}, never inline.
	// CAUSEWAY_API_TOKEN in the environment sets it too. Required when
	// listen is not a loopback address.
	Token alert.Secret `yaml:"token"`
	// TLS serves the API over HTTPS when both files are set.
	TLS TLSConfig `yaml:"tls"`
	// Timeouts of the HTTP server: reading the request headers, the whole
	// request, writing the answer, and an idle keep-alive connection.
	// Defaults 10s, 30s, 60s and 2m.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request headers (default 64 KiB; larger
	// get 431), MaxBodyBytes a request body (default 1 MiB; larger get
	// 413).
	MaxHeaderBytes int   `yaml:"max_header_bytes"`
	MaxBodyBytes   int64 `yaml:"max_body_bytes"`
}

// TLSConfig names the PEM certificate (chain) and private key of the API.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether the API is served over HTTPS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

func defaultAPIConfig() APIConfig {
	return APIConfig{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, MaxBodyBytes: 1 << 20}
}

// Validate reports the first setting of the api block that cannot work.
func (a *APIConfig) Validate() error {
	if a.Token.Env != "" && a.Token.File != "" {
		return errors.New("api.token: set env or file, not both")
	}
	if a.TLS.Enabled() && (a.TLS.CertFile == "" || a.TLS.KeyFile == "") {
		return errors.New("api.tls: set both cert_file and key_file, or neither")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read_header_timeout", a.ReadHeaderTimeout}, {"read_timeout", a.ReadTimeout}, {"write_timeout", a.WriteTimeout}, {"idle_timeout", a.IdleTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("api.%s: %v must be positive", d.name, d.v)
		}
	}
	if a.MaxHeaderBytes <= 0 {
		return fmt.Errorf("api.max_header_bytes: %d must be positive", a.MaxHeaderBytes)
	}
	if a.MaxBodyBytes <= 0 {
		return fmt.Errorf("api.max_body_bytes: %d must be positive", a.MaxBodyBytes)
	}
	return nil
}

// lookupFunc resolves a host name to its addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// requireToken fails when listen may be reached from another host and no
// token is configured. Without lookup, a host name is given the benefit of
// the doubt (Validate decides what it can without the network); with it,
// the name must resolve to loopback addresses only.
func requireToken(ctx context.Context, listen string, tokenSet bool, lookup lookupFunc) error {
	if tokenSet {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen: %q: %w", listen, err)
	}
	why := ""
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.IsLoopback() {
			why = host + " is not a loopback address"
		}
	} else if host == "" {
		why = "an empty host listens on every interface"
	} else if !strings.EqualFold(host, "localhost") && lookup != nil {
		addrs, err := lookup(ctx, host)
		if err != nil {
			return fmt.Errorf("listen: resolve %s: %w", host, err)
		}
		for _, a := range addrs {
			if !a.Unmap().IsLoopback() {
				why = host + " resolves to " + a.String() + ", not a loopback address"
				break
			}
		}
		if len(addrs) == 0 {
			why = host + " resolves to no address"
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("api.token: required when the API listens beyond this host (listen %s: %s); "+
		"set api.token to {env: NAME} or {file: PATH}, or CAUSEWAY_API_TOKEN in the environment", listen, why)
}

// server returns the HTTP server of the API with the configured timeouts
// and limits, and TLS when configured (the key pair is loaded now, so a bad
// file is reported before anything starts).
func (a *APIConfig) server(h http.Handler) (*http.Server, error) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: a.ReadHeaderTimeout,
		ReadTimeout:       a.ReadTimeout,
		WriteTimeout:      a.WriteTimeout,
		IdleTimeout:       a.IdleTimeout,
		MaxHeaderBytes:    a.MaxHeaderBytes,
	}
	if a.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(a.TLS.CertFile, a.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("api.tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return srv, nil
}

// scheme is http or https, as the API is served.
func (a *APIConfig) scheme() string {
	if a.TLS.Enabled() {
		return "https"
	}
	return "http"
}
