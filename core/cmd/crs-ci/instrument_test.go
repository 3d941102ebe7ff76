package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/image"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
	"github.com/crs-ci/crs-ci/core/report"
)

// TestInstrumentCommand runs `crs-ci instrument` as users do, against the real docker-registry, with the
// probes embedded in the binary: credentials from the environment and from Vault (the in-process server
// that follows Vault's HTTP API), json output, exit codes, a dry run into an OCI archive, and secrets never
// printed.
func TestInstrumentCommand(t *testing.T) {
	reg := testenv.StartRegistry(t)
	img := testenv.ImageFromDir(t, testenv.Rootfs(t, "bookworm"), v1.Config{Cmd: []string{"/bin/bash"}},
		v1.Platform{OS: "linux", Architecture: "amd64"})
	src := reg.Host + "/cli/bookworm:1"
	ref, _ := name.ParseReference(src, name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password})); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(testenv.RepoRoot(t), "core", "instrument", "testdata", "policy.yaml")
	vault := testenv.StartVault(t)
	vault.PutKV2("secret", "ci/registry", map[string]any{"username": reg.User, "password": reg.Password})
	vault.AddToken("ci-token", "secret/data/ci/")
	cache := t.TempDir()
	tagExists := func(tag string) bool {
		r, _ := name.ParseReference(reg.Host+"/cli/bookworm:"+tag, name.Insecure)
		_, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password}))
		return err == nil
	}
	archive := filepath.Join(t.TempDir(), "layered.oci.tar")
	var dryDigest string

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantTag  string // pushed
		noTag    string // must not exist afterwards
		stderr   string
	}{
		{name: "env credentials, json", args: []string{src, "--policy", policy, "--format", "json"},
			env:      map[string]string{"CRS_REGISTRY_USERNAME": reg.User, "CRS_REGISTRY_PASSWORD": reg.Password},
			wantCode: exitcode.OK, wantTag: "1-layered"},
		{name: "Vault kv-v2 credentials", args: []string{src, "--policy", policy, "--format", "json", "--tag-suffix", "-vault",
			"--vault-address", vault.URL, "--vault-path", "secret/ci/registry"},
			env: map[string]string{"VAULT_TOKEN": "ci-token"}, wantCode: exitcode.OK, wantTag: "1-vault"},
		{name: "wrong password: exit 3", args: []string{src, "--policy", policy, "--tag-suffix", "-wrong"},
			env:      map[string]string{"CRS_REGISTRY_USERNAME": reg.User, "CRS_REGISTRY_PASSWORD": "hunter2-not-it"},
			wantCode: exitcode.Operational, noTag: "1-wrong", stderr: reg.Host},
		{name: "dry run into an OCI archive", args: []string{src, "--policy", policy, "--format", "json", "--dry-run",
			"--tag-suffix", "-dry", "--output", "oci-archive:" + archive},
			env:      map[string]string{"CRS_REGISTRY_USERNAME": reg.User, "CRS_REGISTRY_PASSWORD": reg.Password},
			wantCode: exitcode.OK, noTag: "1-dry"},
		{name: "invalid policy: exit 1", args: []string{src, "--policy", filepath.Join(filepath.Dir(policy), "invalid.yaml"), "--tag-suffix", "-inv"},
			env:      map[string]string{"CRS_REGISTRY_USERNAME": reg.User, "CRS_REGISTRY_PASSWORD": reg.Password},
			wantCode: exitcode.Rejected, noTag: "1-inv"},
		{name: "no policy: exit 2", args: []string{src}, wantCode: exitcode.Usage, stderr: "--policy"},
		{name: "--to the source: exit 2", args: []string{src, "--policy", policy, "--to", src}, wantCode: exitcode.Usage, stderr: "source image itself"},
		{name: "bad format: exit 2", args: []string{src, "--policy", policy, "--format", "yaml"}, wantCode: exitcode.Usage, stderr: "--format"},
		{name: "two images: exit 2", args: []string{src, src, "--policy", policy}, wantCode: exitcode.Usage, stderr: "one IMAGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", t.TempDir())
			for _, k := range []string{"CRS_REGISTRY_USERNAME", "CRS_REGISTRY_PASSWORD", "VAULT_TOKEN", "VAULT_ADDR"} {
				t.Setenv(k, tt.env[k])
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"crs-ci", "instrument", "--ci", "none", "--cache-dir", cache}, tt.args...)
			code := run(args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q: %s", tt.stderr, stderr.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), reg.Password) || strings.Contains(stdout.String()+stderr.String(), "hunter2") {
				t.Error("a password was printed")
			}
			if tt.wantTag != "" {
				if !tagExists(tt.wantTag) {
					t.Errorf("tag %s not pushed", tt.wantTag)
				}
				var rep report.Report
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
					t.Fatalf("json output: %v\n%s", err, stdout.String())
				}
				if rep.Layered == nil || !rep.Layered.Pushed || !strings.HasSuffix(rep.Layered.Ref, ":"+tt.wantTag) || !strings.HasPrefix(rep.Layered.Digest, "sha256:") {
					t.Errorf("layered in the report: %+v", rep.Layered)
				}
			}
			if tt.name == "dry run into an OCI archive" {
				var rep report.Report
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || rep.Layered == nil || rep.Layered.Pushed {
					t.Fatalf("dry-run report: %v %+v", err, rep.Layered)
				}
				dryDigest = rep.Layered.Digest
			}
			if tt.noTag != "" && tagExists(tt.noTag) {
				t.Errorf("tag %s exists", tt.noTag)
			}
		})
	}

	// The dry run's archive holds the image the report named (opened the way crs-ci opens archives).
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("dry-run archive: %v", err)
	}
	got, err := image.Open(context.Background(), "oci-archive:"+archive+":1-dry", image.Options{})
	if err != nil {
		t.Fatalf("opening the dry-run archive: %v", err)
	}
	if dryDigest == "" || got.Digest.String() != dryDigest {
		t.Errorf("archive holds %s, the dry-run report said %q", got.Digest, dryDigest)
	}
}

// TestInstrumentCommandTLS pushes to a registry served over TLS with a private CA (go-containerregistry's
// registry behind httptest's TLS server): refused without trust (exit 3), accepted with --ca-file, with
// --insecure-registry for that host only, and through an HTTP CONNECT proxy given with --proxy.
func TestInstrumentCommandTLS(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same registry reached as example.com through a CONNECT proxy (the test certificate names example.com).
	var tunnels atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		tunnels.Add(1)
		up, err := net.Dial("tcp", host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { _, _ = io.Copy(up, buf); up.Close() }()
		go func() { _, _ = io.Copy(conn, up); conn.Close() }()
	}))
	t.Cleanup(proxy.Close)

	img := testenv.ImageFromDir(t, testenv.Rootfs(t, "bookworm"), v1.Config{Cmd: []string{"/bin/bash"}},
		v1.Platform{OS: "linux", Architecture: "amd64"})
	ref, _ := name.ParseReference(host + "/tls/app:1")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}
	tr.TLSClientConfig.RootCAs.AddCert(srv.Certificate())
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(testenv.RepoRoot(t), "core", "instrument", "testdata", "policy.yaml")
	cache := t.TempDir()
	tests := []struct {
		name        string
		image       string
		flags       []string
		wantCode    int
		wantTunnels bool
	}{
		{"untrusted certificate", host + "/tls/app:1", []string{"--tag-suffix", "-untrusted"}, exitcode.Operational, false},
		{"--ca-file", host + "/tls/app:1", []string{"--ca-file", caFile, "--tag-suffix", "-ca"}, exitcode.OK, false},
		{"--insecure-registry this host", host + "/tls/app:1", []string{"--insecure-registry", host, "--tag-suffix", "-insecure"}, exitcode.OK, false},
		{"--insecure-registry another host", host + "/tls/app:1", []string{"--insecure-registry", "other.example.com", "--tag-suffix", "-other"}, exitcode.Operational, false},
		{"--proxy", "example.com/tls/app:1", []string{"--proxy", proxy.URL, "--ca-file", caFile, "--tag-suffix", "-proxied"}, exitcode.OK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", t.TempDir())
			for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"} {
				t.Setenv(k, "")
			}
			before := tunnels.Load()
			var stdout, stderr bytes.Buffer
			args := append([]string{"crs-ci", "instrument", "--ci", "none", "--cache-dir", cache, "--policy", policy, tt.image}, tt.flags...)
			if code := run(args, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if got := tunnels.Load() > before; got != tt.wantTunnels {
				t.Errorf("proxy used = %v, want %v", got, tt.wantTunnels)
			}
		})
	}
	// What was pushed is in the registry under the -layered tags.
	for _, tag := range []string{"1-ca", "1-insecure", "1-proxied"} {
		r, _ := name.ParseReference(host + "/tls/app:" + tag)
		if _, err := remote.Head(r, remote.WithTransport(tr)); err != nil {
			t.Errorf("tag %s: %v", tag, err)
		}
	}
	for _, tag := range []string{"1-untrusted", "1-other"} {
		r, _ := name.ParseReference(host + "/tls/app:" + tag)
		if _, err := remote.Head(r, remote.WithTransport(tr)); err == nil {
			t.Errorf("tag %s exists after a refused run", tag)
		}
	}
}

// TestInstrumentVaultSwitch: VAULT_ADDR alone (set on many CI runners for other jobs) does not send crs-ci
// to Vault; --vault-path does, and without an address it is a usage error.
func TestInstrumentVaultSwitch(t *testing.T) {
	policy := filepath.Join(testenv.RepoRoot(t), "core", "instrument", "testdata", "policy.yaml")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "")
	var stdout, stderr bytes.Buffer
	// A dry run of a missing layout: reaching the image step proves Vault was not consulted.
	code := run([]string{"crs-ci", "instrument", "--ci", "none", "--policy", policy, "--dry-run", "oci:/nonexistent/layout:x"}, &stdout, &stderr)
	if code != exitcode.Operational || strings.Contains(stderr.String(), "vault") || !strings.Contains(stderr.String(), "/nonexistent/layout") {
		t.Errorf("VAULT_ADDR alone: exit %d, stderr %s", code, stderr.String())
	}
	t.Setenv("VAULT_ADDR", "")
	stderr.Reset()
	code = run([]string{"crs-ci", "instrument", "--ci", "none", "--policy", policy, "--vault-path", "secret/x", "oci:/nonexistent/layout:x"}, &stdout, &stderr)
	if code != exitcode.Usage || !strings.Contains(stderr.String(), "--vault-address") {
		t.Errorf("--vault-path without an address: exit %d, stderr %s", code, stderr.String())
	}
}
