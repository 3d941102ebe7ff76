package image

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"errors"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// blobFaults is a proxy in front of the real registry that spoils the first GETs of one blob: it cuts the
// connection after cutAt bytes (cuts times), or serves the blob with one byte changed (corrupt times).
type blobFaults struct {
	target, blob string
	cutAt        int
	mu           sync.Mutex
	cuts         int
	corrupt      int
	gets         int
}

func (b *blobFaults) ServeHTTP(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+b.blob) {
		rp.ServeHTTP(w, r)
		return
	}
	b.mu.Lock()
	b.gets++
	cut, corrupt := b.cuts > 0, b.cuts == 0 && b.corrupt > 0
	if cut {
		b.cuts--
	} else if corrupt {
		b.corrupt--
	}
	b.mu.Unlock()
	if !cut && !corrupt {
		rp.ServeHTTP(w, r)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+b.target+r.URL.RequestURI(), nil)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if corrupt {
		body[len(body)/2] ^= 0xff
		w.Write(body)
		return
	}
	w.Write(body[:b.cutAt])
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// TestScanRetriesBrokenDownloads: a registry layer whose download is cut in the middle is opened again and
// scanned from its start, up to layerAttempts times; the merged filesystem is the full one. A layer cut on
// every attempt, or served with a changed byte (a digest mismatch: not transient, never retried), ends the
// scan with an operational error naming the layer.
func TestScanRetriesBrokenDownloads(t *testing.T) {
	defer func(d time.Duration) { layerBackoff = d }(layerBackoff)
	layerBackoff = 10 * time.Millisecond

	reg := testenv.StartRegistry(t)
	payload := make([]byte, 2<<20) // incompressible: the compressed blob is as big
	rand.Read(payload)
	img := testenv.ImageFromLayers(t, v1.Config{}, v1.Platform{OS: "linux", Architecture: "amd64"},
		testenv.LayerFromFiles(testenv.Reg("/base/a", []byte("a"))),
		testenv.LayerFromFiles(testenv.Reg("/data/payload", payload), testenv.Reg("/data/z", []byte("z"))))
	ls, _ := img.Layers()
	big, _ := ls[1].Digest()
	auth := remote.WithAuth(&authn.Basic{Username: reg.User, Password: reg.Password})
	dst, _ := name.ParseReference(reg.Host+"/retry/app:1", name.Insecure)
	if err := remote.Write(dst, img, auth); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name          string
		cuts, corrupt int
		gets          int    // GETs of the big layer
		err           string // "" = the scan succeeds
	}{
		{name: "one cut", cuts: 1, gets: 2},
		{name: "three cuts", cuts: 3, gets: 4},
		{name: "cut on every attempt", cuts: 100, gets: 4, err: "unexpected EOF"},
		{name: "digest mismatch is not retried", corrupt: 1, gets: 1, err: "layer 2/2 (" + big.String() + ")"},
		{name: "a cut, then a digest mismatch", cuts: 1, corrupt: 1, gets: 2, err: "sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &blobFaults{target: reg.Host, blob: big.String(), cutAt: 256 << 10, cuts: tt.cuts, corrupt: tt.corrupt}
			rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: reg.Host})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.ServeHTTP(w, r, rp) })}
			ln := listen(t)
			go srv.Serve(ln)
			defer srv.Close()

			ref, _ := name.ParseReference(ln.Addr().String()+"/retry/app:1", name.Insecure)
			rimg, err := remote.Image(ref, auth)
			if err != nil {
				t.Fatal(err)
			}
			var progress strings.Builder
			fs, err := Scan(context.Background(), rimg, ScanOptions{Parallel: 1, Progress: &progress})
			if f.gets != tt.gets {
				t.Errorf("%d GETs of the layer, want %d\n%s", f.gets, tt.gets, progress.String())
			}
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Scan: %v\n%s", err, progress.String())
				}
				e, ok := fs.Lookup("/data/payload")
				if !ok || e.Size != int64(len(payload)) || e.Type != tar.TypeReg {
					t.Errorf("/data/payload: %+v, %v", e, ok)
				}
				if _, ok := fs.Lookup("/data/z"); !ok {
					t.Errorf("/data/z, after the cut, is missing")
				}
				if n := strings.Count(progress.String(), "download interrupted"); n != tt.cuts {
					t.Errorf("%d retry lines, want %d:\n%s", n, tt.cuts, progress.String())
				}
				return
			}
			if err == nil || exitcode.Of(err) != exitcode.Operational || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Scan: %v (exit %d), want exit 3 and %q", err, exitcode.Of(err), tt.err)
			}
		})
	}
}

func TestIsTransient(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("truncated tar stream after 3 entries: %w", io.ErrUnexpectedEOF), true},
		{errors.New(`entry "/lib/libc.so.6": reading: unexpected EOF`), true},
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"), true},
		{context.Canceled, false},
		{errors.New("error verifying sha256 checksum after reading 10 bytes; got \"sha256:aa\", want \"sha256:bb\""), false},
		{errLayerTooBig, false},
		{errors.New("content does not match the diff ID in the image config"), false},
	} {
		if got := isTransient(tt.err); got != tt.want {
			t.Errorf("isTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
