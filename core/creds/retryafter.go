package creds

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limits of RetryAfter: go-containerregistry's own retries (about 1 s, then 3 s) ignore Retry-After, so a
// registry asking for a longer pause would see the run fail.
const (
	RetryAfterMaxWait  = 30 * time.Second // one wait is never longer, whatever the registry asks
	RetryAfterMaxWaits = 3                // waits per request
)

// RetryAfter wraps next so that a 429 or 503 answer carrying Retry-After (delay-seconds or an HTTP date) is
// honoured: the answer is discarded, the pause it asks for is waited (capped at RetryAfterMaxWait, at most
// RetryAfterMaxWaits times per request, ended early by the request's context) and the request sent again.
// Only requests whose body can be sent again are repeated (no body, or GetBody set); every other answer,
// and the last one, is returned as it is, for go-containerregistry's retries and error messages.
func RetryAfter(next http.RoundTripper) http.RoundTripper {
	return &retryAfter{next: next, maxWait: RetryAfterMaxWait, maxWaits: RetryAfterMaxWaits, now: time.Now}
}

type retryAfter struct {
	next     http.RoundTripper
	maxWait  time.Duration
	maxWaits int
	now      func() time.Time
}

func (t *retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for waits := 0; ; waits++ {
		resp, err := t.next.RoundTrip(req)
		if err != nil || !replayable || waits >= t.maxWaits ||
			(resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
			return resp, err
		}
		d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
		if !ok {
			return resp, nil
		}
		d = min(d, t.maxWait)
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		resp.Body.Close()
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date (a date in the past is no
// delay). ok is false when there is none or it is not valid.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}
