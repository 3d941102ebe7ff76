package testenv

import (
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestRegistryAndFaultProxy: the real docker-registry demands its htpasswd credentials, accepts a push with
// them, and the fault proxy in front of it injects the faults asked for and counts uploaded bytes.
func TestRegistryAndFaultProxy(t *testing.T) {
	reg := StartRegistry(t)
	proxy := StartFaultProxy(t, reg.Host)
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password})

	ref, _ := name.ParseReference(reg.Host+"/t/img:1", name.Insecure)
	err = remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: reg.User, Password: "wrong"}))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: want 401, got %v", err)
	}

	pref, _ := name.ParseReference(proxy.Host+"/t/img:1", name.Insecure)
	if err := remote.Write(pref, img, auth); err != nil {
		t.Fatalf("push through the proxy: %v", err)
	}
	if _, err := remote.Head(ref, auth); err != nil {
		t.Fatalf("pushed image not in the registry: %v", err)
	}
	if proxy.Uploaded() < 2*4096 {
		t.Errorf("proxy counted %d uploaded bytes, want at least the two layers", proxy.Uploaded())
	}

	proxy.Clear()
	proxy.Inject(Fault{Method: http.MethodGet, Path: "/manifests/", Status: http.StatusServiceUnavailable})
	_, err = remote.Get(pref, auth)
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("injected 503: got %v", err)
	}
	if proxy.Injected() == 0 {
		t.Error("no fault counted")
	}
	proxy.Clear()
	proxy.Inject(Fault{Path: "/manifests/", Cut: true})
	if _, err := remote.Get(pref, auth, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
		t.Fatal("cut connection: want an error")
	}
}
