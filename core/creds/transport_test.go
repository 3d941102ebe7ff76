package creds

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// connectProxy is a real HTTP CONNECT proxy that tunnels every CONNECT to target (whatever host was asked
// for), counting tunnels.
func connectProxy(t *testing.T, target string) (string, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		n.Add(1)
		up, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, _ := w.(http.Hijacker)
		w.WriteHeader(http.StatusOK)
		conn, buf, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { _, _ = io.Copy(up, buf); up.Close() }()
		go func() { _, _ = io.Copy(conn, up); conn.Close() }()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

// TestTransport talks to a real TLS registry (go-containerregistry's registry behind httptest's TLS server)
// with a custom CA, per-host TLS skipping and an HTTP CONNECT proxy.
func TestTransport(t *testing.T) {
	reg := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: reg.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	_ = os.WriteFile(garbage, []byte("not a certificate"), 0o644)
	host := strings.TrimPrefix(reg.URL, "https://")
	proxyURL, tunnels := connectProxy(t, host)

	tests := []struct {
		name        string
		opts        NetOptions
		url         string
		wantOK      bool
		wantTunnels int32
		wantCode    int // of Transport itself
		errSubstr   string
	}{
		{name: "system roots refuse the private CA", url: reg.URL + "/v2/", wantOK: false},
		{name: "--ca-file trusts it", opts: NetOptions{CAFile: caFile}, url: reg.URL + "/v2/", wantOK: true},
		{name: "--insecure-registry for this host:port", opts: NetOptions{InsecureRegistries: []string{host}}, url: reg.URL + "/v2/", wantOK: true},
		{name: "--insecure-registry for this host, any port", opts: NetOptions{InsecureRegistries: []string{"127.0.0.1"}}, url: reg.URL + "/v2/", wantOK: true},
		{name: "--insecure-registry for another host only", opts: NetOptions{InsecureRegistries: []string{"other.example.com"}}, url: reg.URL + "/v2/", wantOK: false},
		{name: "--proxy tunnels to the registry", opts: NetOptions{Proxy: proxyURL, CAFile: caFile}, url: "https://example.com/v2/", wantOK: true, wantTunnels: 1},
		{name: "HTTPS_PROXY honoured", opts: NetOptions{CAFile: caFile, Getenv: env(map[string]string{"HTTPS_PROXY": proxyURL})}, url: "https://example.com/v2/", wantOK: true, wantTunnels: 1},
		{name: "NO_PROXY skips the proxy", opts: NetOptions{Proxy: proxyURL, CAFile: caFile, Getenv: env(map[string]string{"NO_PROXY": "example.com"})}, url: "https://example.com/v2/", wantOK: false, wantTunnels: 0},
		{name: "bad CA file", opts: NetOptions{CAFile: garbage}, wantCode: exitcode.Usage, errSubstr: "no PEM certificate"},
		{name: "missing CA file", opts: NetOptions{CAFile: "/nonexistent/ca.pem"}, wantCode: exitcode.Usage, errSubstr: "/nonexistent/ca.pem"},
		{name: "bad proxy URL hides its password", opts: NetOptions{Proxy: "ftp://user:topsecret@proxy:21"}, wantCode: exitcode.Usage, errSubstr: "--proxy"},
		{name: "bad insecure host", opts: NetOptions{InsecureRegistries: []string{"https://x/"}}, wantCode: exitcode.Usage, errSubstr: "HOST or HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Getenv == nil {
				tt.opts.Getenv = env(nil)
			}
			rt, err := Transport(tt.opts)
			if tt.wantCode != 0 {
				if err == nil || exitcode.Of(err) != tt.wantCode || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("want code %d error with %q, got %v", tt.wantCode, tt.errSubstr, err)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Errorf("error shows the proxy password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			before := tunnels.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			resp, err := (&http.Client{Transport: rt}).Do(req)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				resp.Body.Close()
			}
			if ok != tt.wantOK {
				t.Errorf("request to %s: ok=%v, want %v (err %v)", tt.url, ok, tt.wantOK, err)
			}
			if got := tunnels.Load() - before; got != tt.wantTunnels {
				t.Errorf("proxy tunnels: %d, want %d", got, tt.wantTunnels)
			}
		})
	}
}
