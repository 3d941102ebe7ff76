package creds

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/net/http/httpproxy"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// NetOptions are the network settings of a run.
type NetOptions struct {
	Proxy              string   // proxy URL for every registry (overrides HTTPS_PROXY/HTTP_PROXY); NO_PROXY still applies
	CAFile             string   // PEM bundle trusted in addition to the system roots
	InsecureRegistries []string // HOST[:PORT] whose TLS certificate is not verified; nothing else is affected
	Getenv             func(string) string
}

// Transport returns the HTTP transport for registry traffic built from the options; it honours Retry-After
// on 429 and 503 answers (see RetryAfter).
func Transport(o NetOptions) (http.RoundTripper, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	proxy, err := proxyFunc(o.Proxy, getenv)
	if err != nil {
		return nil, err
	}
	base := remote.DefaultTransport.(*http.Transport).Clone() // go-containerregistry's tuning (idle connections per host)
	base.Proxy = proxy
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, exitcode.Usagef("--ca-file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, exitcode.Usagef("--ca-file %s: no PEM certificate found in it", o.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	base.TLSClientConfig = tlsConf
	if len(o.InsecureRegistries) == 0 {
		return RetryAfter(base), nil
	}
	insecure := base.Clone()
	insecure.TLSClientConfig = tlsConf.Clone()
	insecure.TLSClientConfig.InsecureSkipVerify = true // only for the hosts named with --insecure-registry
	hosts := map[string]bool{}
	for _, h := range o.InsecureRegistries {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/ ") {
			return nil, exitcode.Usagef("--insecure-registry %q: want HOST or HOST:PORT", h)
		}
		hosts[h] = true
	}
	return RetryAfter(&perHost{secure: base, insecure: insecure, hosts: hosts}), nil
}

// perHost sends requests for the insecure hosts through a transport that skips certificate verification.
type perHost struct {
	secure, insecure http.RoundTripper
	hosts            map[string]bool
}

func (p *perHost) RoundTrip(r *http.Request) (*http.Response, error) {
	if IsInsecure(p.hosts, r.URL) {
		return p.insecure.RoundTrip(r)
	}
	return p.secure.RoundTrip(r)
}

// IsInsecure reports whether u's host is one of hosts: an entry with a port matches that port only, an
// entry without a port matches the host on any port.
func IsInsecure(hosts map[string]bool, u *url.URL) bool {
	host := strings.ToLower(u.Host)
	if hosts[host] {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return hosts[h]
	}
	return false
}

// proxyFunc gives the proxy for a request: --proxy if given, else HTTPS_PROXY/HTTP_PROXY; NO_PROXY applies
// to both. Loopback destinations are never proxied (Go's rule).
func proxyFunc(flag string, getenv func(string) string) (func(*http.Request) (*url.URL, error), error) {
	env := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return getenv(strings.ToLower(k))
	}
	cfg := httpproxy.Config{
		HTTPProxy:  env("HTTP_PROXY"),
		HTTPSProxy: env("HTTPS_PROXY"),
		NoProxy:    env("NO_PROXY"),
	}
	if flag != "" {
		u, err := url.Parse(flag)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") {
			return nil, exitcode.Usagef("--proxy %q: want a URL such as http://proxy.example.com:3128", redactURL(flag))
		}
		cfg.HTTPProxy, cfg.HTTPSProxy = flag, flag
	}
	fn := cfg.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return fn(r.URL) }, nil
}

// redactURL hides a password in a proxy URL before it is shown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.Index(s, "@"); i >= 0 {
			return "***" + s[i:]
		}
		return s
	}
	return u.Redacted()
}
