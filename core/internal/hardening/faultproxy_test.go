package hardening

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fault is one misbehaviour of the registry as a client sees it. The proxy applies the first fault whose
// method and path match and that has hits left.
type fault struct {
	method, path string        // "" = any; path is a substring of the URL path
	times        int           // how many requests to hit; 0 = every one (a permanent fault)
	window       time.Duration // > 0: hit only the requests that come within this long of the first hit
	skip         int           // let this many matching requests through before the first hit

	status int               // answer this status (with header) instead of forwarding
	header map[string]string // e.g. Retry-After

	delay      time.Duration // wait before handling
	trickle    time.Duration // forward, sending the response body in 64 KiB pieces with this pause between
	cutReqAt   int64         // > 0: read this many bytes of the request body, then drop the connection
	cutRespAt  int64         // > 0: forward, pass this many bytes of the response body, then drop the connection
	vanish     bool          // the registry disappears: this connection is dropped and the port closes for good
	afterMatch func()        // called when the fault hits (for tests that flip state)
}

// faultProxy is a reverse proxy in front of the real registry that injects faults; it records every
// request ("METHOD PATH STATUS-or-fault") and when it came.
type faultProxy struct {
	Host string

	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	fs   []*fault
	hits []int
	from []time.Time // first hit of each fault
	seen []int       // matching requests of each fault, skipped ones included
	log  []string
	at   []time.Time
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{Host: ln.Addr().String(), ln: ln}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	rp.FlushInterval = -1
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, rp) })}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *faultProxy) inject(fs ...fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fs, p.hits, p.from, p.seen, p.log, p.at = nil, nil, nil, nil, nil, nil
	for i := range fs {
		f := fs[i]
		p.fs = append(p.fs, &f)
		p.hits = append(p.hits, 0)
		p.from = append(p.from, time.Time{})
		p.seen = append(p.seen, 0)
	}
}

func (p *faultProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// injected counts the requests a fault was applied to.
func (p *faultProxy) injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, h := range p.hits {
		n += h
	}
	return n
}

func (p *faultProxy) record(r *http.Request, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, r.Method+" "+r.URL.Path+" "+what)
	p.at = append(p.at, time.Now())
}

func (p *faultProxy) match(r *http.Request) *fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.fs {
		if (f.method != "" && f.method != r.Method) || (f.path != "" && !strings.Contains(r.URL.Path, f.path)) {
			continue
		}
		if p.seen[i]++; p.seen[i] <= f.skip {
			continue
		}
		if f.times > 0 && p.hits[i] >= f.times {
			continue
		}
		if f.window > 0 && !p.from[i].IsZero() && time.Since(p.from[i]) > f.window {
			continue
		}
		if p.hits[i] == 0 {
			p.from[i] = time.Now()
		}
		p.hits[i]++
		return f
	}
	return nil
}

// drop closes the client's connection; flush sends what was written before (flushing an unwritten response
// would send a 200 header: only cutWriter, which has written part of a body, asks for it).
func drop(w http.ResponseWriter, flush bool) {
	if f, ok := w.(http.Flusher); ok && flush {
		f.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			buf.Flush()
			conn.Close()
		}
	}
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	f := p.match(r)
	if f == nil {
		p.record(r, "forwarded")
		rp.ServeHTTP(w, r)
		return
	}
	if f.afterMatch != nil {
		f.afterMatch()
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	switch {
	case f.vanish:
		p.record(r, "vanished")
		drop(w, false)
		go p.srv.Close() // the listener and every open connection: nothing answers on this port any more
	case f.status != 0:
		p.record(r, fmt.Sprint(f.status))
		io.Copy(io.Discard, r.Body)
		for k, v := range f.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"injected %d"}]}`, f.status)
	case f.cutReqAt > 0:
		p.record(r, fmt.Sprintf("cut after %d request bytes", f.cutReqAt))
		io.CopyN(io.Discard, r.Body, f.cutReqAt)
		drop(w, false)
	case f.cutRespAt > 0:
		p.record(r, fmt.Sprintf("cut after %d response bytes", f.cutRespAt))
		rp.ServeHTTP(&cutWriter{ResponseWriter: w, left: f.cutRespAt}, r)
	case f.trickle > 0:
		p.record(r, "trickled")
		rp.ServeHTTP(&trickleWriter{ResponseWriter: w, pause: f.trickle}, r)
	default:
		p.record(r, "delayed")
		rp.ServeHTTP(w, r)
	}
}

// cutWriter passes left bytes of the body, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
	cut  bool
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.cut {
		return 0, io.ErrClosedPipe
	}
	if int64(len(b)) < c.left {
		c.left -= int64(len(b))
		return c.ResponseWriter.Write(b)
	}
	c.ResponseWriter.Write(b[:c.left])
	c.cut = true
	drop(c.ResponseWriter, true)
	return 0, io.ErrClosedPipe
}

func (c *cutWriter) Flush() {
	if !c.cut {
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// trickleWriter sends the body in 64 KiB pieces with a pause between them.
type trickleWriter struct {
	http.ResponseWriter
	pause time.Duration
}

func (tw *trickleWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 64<<10)
		m, err := tw.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := tw.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(tw.pause)
		b = b[k:]
	}
	return n, nil
}
