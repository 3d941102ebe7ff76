package creds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRetryAfter: an httptest server answers the first requests with a status and Retry-After; the wrapper
// waits what is asked (capped), repeats requests whose body can be replayed (with the same body), and
// returns every other answer untouched.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		status   int
		header   string // Retry-After
		fails    int    // requests answered with status before 200
		method   string
		body     string
		noReplay bool          // the body has no GetBody
		maxWait  time.Duration // 0: 2 s
		cancel   time.Duration // > 0: the request's context ends after this
		wantCode int
		wantReqs int
		minTime  time.Duration // the wrapper waited at least this long
		maxTime  time.Duration // and at most this (a cap or a cancellation is respected)
		wantErr  error
	}{
		{name: "429, seconds", status: 429, header: "1", fails: 1, method: "GET", wantCode: 200, wantReqs: 2, minTime: time.Second},
		{name: "503, HTTP date", status: 503, header: now.Add(time.Second).Format(http.TimeFormat), fails: 1, method: "GET", wantCode: 200, wantReqs: 2, minTime: 900 * time.Millisecond},
		{name: "date in the past: no wait", status: 429, header: now.Add(-time.Hour).Format(http.TimeFormat), fails: 2, method: "HEAD", wantCode: 200, wantReqs: 3},
		{name: "PUT body replayed", status: 429, header: "0", fails: 2, method: "PUT", body: "manifest bytes", wantCode: 200, wantReqs: 3},
		{name: "body that cannot be replayed", status: 429, header: "0", fails: 1, method: "PATCH", body: "chunk", noReplay: true, wantCode: 429, wantReqs: 1},
		{name: "wait capped", status: 429, header: "3600", fails: 1, method: "GET", maxWait: 100 * time.Millisecond, wantCode: 200, wantReqs: 2, minTime: 100 * time.Millisecond, maxTime: 10 * time.Second},
		{name: "at most 3 waits", status: 429, header: "0", fails: 100, method: "GET", wantCode: 429, wantReqs: 4},
		{name: "no Retry-After: left to the caller", status: 429, fails: 1, method: "GET", wantCode: 429, wantReqs: 1},
		{name: "invalid Retry-After", status: 503, header: "soon", fails: 1, method: "GET", wantCode: 503, wantReqs: 1},
		{name: "500 is not a Retry-After status", status: 500, header: "1", fails: 1, method: "GET", wantCode: 500, wantReqs: 1},
		{name: "context ends during the wait", status: 429, header: "20", fails: 1, method: "GET", cancel: 100 * time.Millisecond, wantReqs: 1, maxTime: 10 * time.Second, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				n := len(bodies)
				mu.Unlock()
				if n <= tt.fails {
					if tt.header != "" {
						w.Header().Set("Retry-After", tt.header)
					}
					w.WriteHeader(tt.status)
					fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS"}]}`)
					return
				}
				w.WriteHeader(200)
			}))
			defer srv.Close()
			rt := &retryAfter{next: http.DefaultTransport, maxWait: 2 * time.Second, maxWaits: RetryAfterMaxWaits, now: func() time.Time { return now }}
			if tt.maxWait > 0 {
				rt.maxWait = tt.maxWait
			}
			ctx := context.Background()
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.cancel)
				defer cancel()
			}
			var body io.Reader
			if tt.body != "" {
				body = bytes.NewReader([]byte(tt.body))
				if tt.noReplay {
					body = io.MultiReader(body) // http.NewRequest sets GetBody for bytes.Reader only
				}
			}
			req, err := http.NewRequestWithContext(ctx, tt.method, srv.URL+"/v2/", body)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := rt.RoundTrip(req)
			took := time.Since(start)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.wantCode {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != tt.wantReqs {
				t.Errorf("%d requests, want %d", len(bodies), tt.wantReqs)
			}
			for i, b := range bodies {
				if b != tt.body {
					t.Errorf("request %d had body %q, want %q", i+1, b, tt.body)
				}
			}
			if took < tt.minTime {
				t.Errorf("returned after %s, want a wait of at least %s", took, tt.minTime)
			}
			if tt.maxTime > 0 && took > tt.maxTime {
				t.Errorf("returned after %s: the cap or the context was not respected", took)
			}
		})
	}
	if _, ok := parseRetryAfter("-1", now); ok {
		t.Error("a negative Retry-After was accepted")
	}
	if d, ok := parseRetryAfter(strings.Repeat("9", 30), now); ok {
		t.Errorf("an overflowing Retry-After was accepted (%s)", d)
	}
}
