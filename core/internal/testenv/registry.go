package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Registry is Debian's docker-registry (CNCF distribution) started on a free loopback port, with htpasswd
// (bcrypt) authentication and filesystem storage in a temporary directory.
type Registry struct {
	Host     string // 127.0.0.1:PORT
	User     string
	Password string
	Dir      string

	cmd  *exec.Cmd
	done chan error
	log  *bytes.Buffer
}

// NewRegistry starts a registry accepting user/password. Close stops it and removes its storage. Use it
// from TestMain to share one registry per test binary; StartRegistry is the per-test form.
func NewRegistry(user, password string) (*Registry, error) {
	return NewRegistryWithConfig(user, password, "")
}

// NewRegistryWithConfig is NewRegistry with extra top-level configuration appended to the registry's
// config.yml (e.g. a notifications: block).
func NewRegistryWithConfig(user, password, extra string) (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not installed (scripts/install-deps.sh installs it): %w", err)
	}
	htpasswdBin, err := exec.LookPath("htpasswd")
	if err != nil {
		return nil, fmt.Errorf("htpasswd not installed (apache2-utils, scripts/install-deps.sh): %w", err)
	}
	dir, err := os.MkdirTemp("", "crs-registry-")
	if err != nil {
		return nil, err
	}
	// The password goes through stdin (-i), never on a command line.
	hp := exec.Command(htpasswdBin, "-Bin", user)
	hp.Stdin = strings.NewReader(password + "\n")
	hash, err := hp.Output()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), hash, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		r, err := startRegistry(bin, dir, user, password, extra)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func startRegistry(bin, dir, user, password, extra string) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: crs-ci-test-secret
auth:
  htpasswd:
    realm: crs-ci-test
    path: %s/htpasswd
%s`, dir, host, dir, extra)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	r := &Registry{Host: host, User: user, Password: password, Dir: dir, log: &bytes.Buffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-r.done:
			return nil, fmt.Errorf("docker-registry exited (%v): %s", err, r.log.String())
		default:
		}
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop()
	return nil, fmt.Errorf("docker-registry did not answer on %s: %s", host, r.log.String())
}

func (r *Registry) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Close stops the registry and removes its storage.
func (r *Registry) Close() {
	r.stop()
	os.RemoveAll(r.Dir)
}

// StartRegistry starts a registry for one test (user "crs", a random password) and stops it when the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry("crs", fmt.Sprintf("pw-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Fault is one kind of failure the FaultProxy injects into matching requests.
type Fault struct {
	Method string // "" = any
	Path   string // substring of the path; "" = any
	Status int    // answer with this status instead of forwarding (e.g. 503); 0 = forward
	Cut    bool   // drop the connection without an answer
	Delay  time.Duration
	Times  int // how many matching requests to hit; 0 = every one (a permanent fault)
}

// FaultProxy is a reverse proxy in front of a registry that injects faults and counts the bytes clients
// upload through it (request bodies) and the requests it saw.
type FaultProxy struct {
	Host string // 127.0.0.1:PORT, to be used as the registry host

	mu       sync.Mutex
	faults   []*Fault
	hits     []int
	requests []string
	injected int
	uploaded atomic.Int64
}

// StartFaultProxy starts a proxy forwarding to the registry at target (host:port); it stops with the test.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	p := &FaultProxy{}
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := p.match(r); f != nil {
			if f.Delay > 0 {
				time.Sleep(f.Delay)
			}
			if f.Cut {
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
			}
			if f.Status != 0 {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(f.Status)
				fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected fault %d"}]}`, f.Status)
				return
			}
		}
		if r.Body != nil {
			r.Body = &countingBody{ReadCloser: r.Body, n: &p.uploaded}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Inject adds faults (checked in order; the first match that still has hits left applies).
func (p *FaultProxy) Inject(fs ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range fs {
		f := fs[i]
		p.faults = append(p.faults, &f)
		p.hits = append(p.hits, 0)
	}
}

// Clear removes every fault and resets the counters.
func (p *FaultProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.hits, p.requests, p.injected = nil, nil, nil, 0
	p.uploaded.Store(0)
}

// Uploaded is the number of request-body bytes forwarded to the registry since the last Clear.
func (p *FaultProxy) Uploaded() int64 { return p.uploaded.Load() }

// Injected is the number of faults injected since the last Clear.
func (p *FaultProxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// Requests lists "METHOD PATH" of every request seen since the last Clear.
func (p *FaultProxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func (p *FaultProxy) match(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, r.Method+" "+r.URL.Path)
	for i, f := range p.faults {
		if f.Method != "" && f.Method != r.Method {
			continue
		}
		if f.Path != "" && !strings.Contains(r.URL.Path, f.Path) {
			continue
		}
		if f.Times > 0 && p.hits[i] >= f.Times {
			continue
		}
		p.hits[i]++
		p.injected++
		return f
	}
	return nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	return n, err
}
