package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

const testSecret = "s3cret-for-tests"

// serviceConfig is a valid configuration with a fresh state directory, modified by edit.
func serviceConfig(t *testing.T, stateDir string, edit func(*Config)) *Config {
	t.Helper()
	c := testConfig(t)
	c.StateDir = stateDir
	c.Backoff, c.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	c.ShutdownGrace = 2 * time.Second
	if edit != nil {
		edit(c)
	}
	return c
}

type testService struct {
	*Service
	url string
	srv *httptest.Server
}

func startService(t *testing.T, c *Config, run Runner, start bool) *testService {
	t.Helper()
	s, err := New(c, nil, run)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	if start {
		s.Start()
	}
	return &testService{Service: s, url: srv.URL, srv: srv}
}

func digestOf(i int) string { return fmt.Sprintf("sha256:%064x", i) }

// envelope is a distribution notification body with one tagged manifest push per tag.
func envelope(repo string, tags []string, digests []string) []byte {
	var env Envelope
	for i, tag := range tags {
		var e Event
		e.ID = fmt.Sprintf("ev-%s-%d", tag, i)
		e.Action = "push"
		e.Target.MediaType = "application/vnd.oci.image.manifest.v1+json"
		e.Target.Repository, e.Target.Tag, e.Target.Digest = repo, tag, digests[i]
		env.Events = append(env.Events, e)
	}
	b, _ := json.Marshal(env)
	return b
}

func post(t testing.TB, url, auth string, body []byte) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, url+"/notifications", bytes.NewReader(body))
	req.Header.Set("Content-Type", EventsMediaType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// recorder is a fake job runner counting the runs of each job.
type recorder struct {
	mu   sync.Mutex
	runs map[string]int
	fn   func(ctx context.Context, j Job, n int) (Outcome, error)
}

func (r *recorder) run(ctx context.Context, j Job) (Outcome, error) {
	r.mu.Lock()
	if r.runs == nil {
		r.runs = map[string]int{}
	}
	r.runs[j.Key]++
	n := r.runs[j.Key]
	r.mu.Unlock()
	if r.fn != nil {
		return r.fn(ctx, j, n)
	}
	return Outcome{Result: ResultPushed, Verdict: "compatible"}, nil
}

func (r *recorder) count(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[k]
}

func (r *recorder) total() (jobs, runs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.runs {
		jobs++
		runs += n
	}
	return
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func doneResult(s *Service, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.done[key]; r != nil {
		return r.Result
	}
	return ""
}

// TestWebhookAuth: requests without the shared secret header (or with another value) get 401 and record
// nothing; the registry's "Bearer SECRET" form and the bare secret are accepted.
func TestWebhookAuth(t *testing.T) {
	rec := &recorder{}
	s := startService(t, serviceConfig(t, t.TempDir(), nil), rec.run, false)
	body := envelope("team/app", []string{"v1"}, []string{digestOf(1)})
	cases := []struct {
		name string
		auth string
		want int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong secret", "Bearer nope", http.StatusUnauthorized},
		{"secret as a prefix", "Bearer " + testSecret + "x", http.StatusUnauthorized},
		{"basic auth", "Basic " + testSecret, http.StatusUnauthorized},
		{"bearer", "Bearer " + testSecret, http.StatusAccepted},
		{"bare secret", testSecret, http.StatusAccepted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := post(t, s.url, tc.auth, body).StatusCode; got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	if st := s.Stats(); len(st.Active) != 1 {
		t.Fatalf("%d jobs recorded, want 1 (the unauthorized requests record nothing)", len(st.Active))
	}
	resp, err := http.Get(s.url + "/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/jobs without the secret: %d", resp.StatusCode)
	}
	if got := s.Metrics().Get("crs_serve_notifications_total", "code", "401"); got != 5 {
		t.Errorf("401 counter %v, want 5", got)
	}
	for _, tc := range []struct {
		method string
		body   string
		want   int
	}{{http.MethodGet, "", http.StatusMethodNotAllowed}, {http.MethodPost, "{not json", http.StatusBadRequest},
		{http.MethodPost, `{"type":"PUSH_ARTIFACT","event_data":{}}`, http.StatusBadRequest}, {http.MethodPost, `{"events":[]}`, http.StatusAccepted},
		{http.MethodPost, strings.Repeat(" ", 2<<20), http.StatusRequestEntityTooLarge}} {
		req, _ := http.NewRequest(tc.method, s.url+"/notifications", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %d bytes: status %d, want %d", tc.method, len(tc.body), resp.StatusCode, tc.want)
		}
	}
}

// TestDedup: the same digest pushed to the same tag again — while queued, running or after it finished —
// is one job; a new digest for the tag is a new job.
func TestDedup(t *testing.T) {
	release := make(chan struct{})
	rec := &recorder{fn: func(ctx context.Context, j Job, n int) (Outcome, error) {
		<-release
		return Outcome{Result: ResultPushed}, nil
	}}
	s := startService(t, serviceConfig(t, t.TempDir(), nil), rec.run, true)
	auth := "Bearer " + testSecret
	one := envelope("team/app", []string{"v1"}, []string{digestOf(1)})
	post(t, s.url, auth, one)
	waitFor(t, "the job to run", 5*time.Second, func() bool { return rec.count("team/app:v1@"+digestOf(1)) == 1 })
	post(t, s.url, auth, one) // while running
	close(release)
	waitFor(t, "the job to finish", 5*time.Second, func() bool { return doneResult(s.Service, "team/app:v1@"+digestOf(1)) == ResultPushed })
	post(t, s.url, auth, one)                                                                            // after it finished
	post(t, s.url, auth, envelope("team/app", []string{"v1", "v1"}, []string{digestOf(2), digestOf(2)})) // new digest, twice in one envelope
	waitFor(t, "the second digest", 5*time.Second, func() bool { return doneResult(s.Service, "team/app:v1@"+digestOf(2)) == ResultPushed })
	if jobs, runs := rec.total(); jobs != 2 || runs != 2 {
		t.Fatalf("%d jobs ran %d times, want 2 jobs once each", jobs, runs)
	}
	if got := s.Metrics().Get("crs_serve_events_total", "outcome", "duplicate"); got != 3 {
		t.Errorf("duplicates counted %v, want 3", got)
	}
}

// TestQueueBound: beyond queueSize waiting jobs a notification gets 503 with Retry-After and nothing is
// recorded; once the queue drains the same notification is accepted.
func TestQueueBound(t *testing.T) {
	rec := &recorder{}
	c := serviceConfig(t, t.TempDir(), func(c *Config) { c.QueueSize = 3; c.Concurrency = 1 })
	s := startService(t, c, rec.run, false) // workers not started: nothing drains the queue yet
	auth := "Bearer " + testSecret
	codes := map[int]int{}
	for i := 0; i < 5; i++ {
		resp := post(t, s.url, auth, envelope("team/app", []string{"v1"}, []string{digestOf(i)}))
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusServiceUnavailable {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("503 without a usable Retry-After: %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	if codes[http.StatusAccepted] != 3 || codes[http.StatusServiceUnavailable] != 2 {
		t.Fatalf("answers %v, want 3×202 and 2×503", codes)
	}
	// A batch that does not fit as a whole is refused whole.
	if got := post(t, s.url, auth, envelope("team/app", []string{"v1", "v2"}, []string{digestOf(10), digestOf(11)})).StatusCode; got != 503 {
		t.Fatalf("batch: %d", got)
	}
	b, _ := os.ReadFile(filepath.Join(c.StateDir, "journal.jsonl"))
	if n := strings.Count(string(b), `"op":"accept"`); n != 3 {
		t.Fatalf("journal holds %d accepts, want 3", n)
	}
	s.Start()
	waitFor(t, "the queue to drain", 5*time.Second, func() bool { st := s.Stats(); return len(st.Active) == 0 })
	for i := 3; i < 5; i++ { // the registry sends the refused ones again
		if got := post(t, s.url, auth, envelope("team/app", []string{"v1"}, []string{digestOf(i)})).StatusCode; got != http.StatusAccepted {
			t.Fatalf("retry of %d: %d", i, got)
		}
	}
	waitFor(t, "all jobs", 5*time.Second, func() bool { j, _ := rec.total(); return j == 5 })
	if st := s.Stats(); st.MaxQueue > 3 {
		t.Fatalf("queue held %d jobs at once, bound 3", st.MaxQueue)
	}
}

// TestFlood: 40 concurrent senders push 400 distinct notifications at a queue of 10, retrying after each
// 503 like the registry does. Every notification ends up accepted, every accepted job runs exactly once,
// and the queue never holds more than its bound.
func TestFlood(t *testing.T) {
	rec := &recorder{fn: func(ctx context.Context, j Job, n int) (Outcome, error) {
		time.Sleep(200 * time.Microsecond)
		return Outcome{Result: ResultPushed}, nil
	}}
	c := serviceConfig(t, t.TempDir(), func(c *Config) { c.QueueSize = 10; c.Concurrency = 2 })
	s := startService(t, c, rec.run, true)
	auth := "Bearer " + testSecret
	var refused atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 40; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				body := envelope(fmt.Sprintf("team/s%d", g), []string{"v1"}, []string{digestOf(i)})
				for try := 0; ; try++ {
					resp := post(t, s.url, auth, body)
					if resp.StatusCode == http.StatusAccepted {
						break
					}
					if resp.StatusCode != http.StatusServiceUnavailable || try > 2000 {
						t.Errorf("sender %d: status %d after %d tries", g, resp.StatusCode, try)
						return
					}
					refused.Add(1)
					time.Sleep(2 * time.Millisecond)
				}
			}
		}(g)
	}
	wg.Wait()
	waitFor(t, "every job", 20*time.Second, func() bool { j, r := rec.total(); return j == 400 && r == 400 && len(s.Stats().Active) == 0 })
	jobs, runs := rec.total()
	if jobs != 400 || runs != 400 {
		t.Fatalf("%d jobs, %d runs; want 400 each", jobs, runs)
	}
	if st := s.Stats(); st.MaxQueue > 10 {
		t.Fatalf("the queue held %d jobs, bound 10", st.MaxQueue)
	}
	if refused.Load() == 0 {
		t.Fatalf("no sender was ever refused: the flood did not reach the bound")
	}
	if got := s.Metrics().Get("crs_serve_jobs_finished_total", "result", ResultPushed); got != 400 {
		t.Fatalf("finished counter %v", got)
	}
	t.Logf("%d refusals (503) during the flood", refused.Load())
}

// TestRetries: operational failures and timeouts are retried with backoff up to maxAttempts; other
// errors fail the job at once; every outcome is in the journal and the metrics.
func TestRetries(t *testing.T) {
	cases := []struct {
		name       string
		fn         func(ctx context.Context, j Job, n int) (Outcome, error)
		wantRuns   int
		wantResult string
		wantKind   string
	}{
		{"transient", func(ctx context.Context, j Job, n int) (Outcome, error) {
			if n < 3 {
				return Outcome{}, exitcode.Operationalf("registry answered 503")
			}
			return Outcome{Result: ResultPushed}, nil
		}, 3, ResultPushed, "operational"},
		{"permanent operational", func(ctx context.Context, j Job, n int) (Outcome, error) {
			return Outcome{}, exitcode.Operationalf("connection refused")
		}, 4, ResultFailed, "operational"},
		{"not retryable", func(ctx context.Context, j Job, n int) (Outcome, error) {
			return Outcome{}, exitcode.Usagef("policy became invalid")
		}, 1, ResultFailed, "other"},
		{"timeout", func(ctx context.Context, j Job, n int) (Outcome, error) {
			<-ctx.Done()
			return Outcome{}, ctx.Err()
		}, 4, ResultFailed, "timeout"},
		{"rejection is a result", func(ctx context.Context, j Job, n int) (Outcome, error) {
			return Outcome{Result: ResultRejected, Verdict: "incompatible"}, nil
		}, 1, ResultRejected, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{fn: tc.fn}
			c := serviceConfig(t, t.TempDir(), func(c *Config) { c.MaxAttempts = 4; c.JobTimeout = 50 * time.Millisecond })
			s := startService(t, c, rec.run, true)
			key := "team/app:v1@" + digestOf(7)
			post(t, s.url, "Bearer "+testSecret, envelope("team/app", []string{"v1"}, []string{digestOf(7)}))
			waitFor(t, "the job to finish", 10*time.Second, func() bool { return doneResult(s.Service, key) != "" })
			if got := doneResult(s.Service, key); got != tc.wantResult {
				t.Errorf("result %s, want %s", got, tc.wantResult)
			}
			if got := rec.count(key); got != tc.wantRuns {
				t.Errorf("%d attempts, want %d", got, tc.wantRuns)
			}
			if tc.wantKind != "" {
				if got := s.Metrics().Get("crs_serve_attempt_failures_total", "kind", tc.wantKind); got == 0 {
					t.Errorf("no %s failure counted", tc.wantKind)
				}
			}
			b, _ := os.ReadFile(filepath.Join(c.StateDir, "journal.jsonl"))
			if n := strings.Count(string(b), `"op":"attempt"`); n != tc.wantRuns {
				t.Errorf("journal holds %d attempts, want %d", n, tc.wantRuns)
			}
			if n := strings.Count(string(b), `"op":"done"`); n != 1 {
				t.Errorf("journal holds %d done records, want 1", n)
			}
		})
	}
}

// TestRestartResumes: a job running when the service stops (its grace over) is abandoned without a done
// record; a job waiting in the queue likewise. The next service on the same state directory runs both, and
// the attempt counts carry over.
func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	started := make(chan struct{}, 1)
	first := &recorder{fn: func(ctx context.Context, j Job, n int) (Outcome, error) {
		started <- struct{}{}
		<-ctx.Done() // never finishes by itself
		return Outcome{}, exitcode.Operationalf("cancelled: %v", ctx.Err())
	}}
	c := serviceConfig(t, dir, func(c *Config) { c.Concurrency = 1; c.ShutdownGrace = 100 * time.Millisecond })
	s := startService(t, c, first.run, true)
	post(t, s.url, "Bearer "+testSecret, envelope("team/app", []string{"v1", "v2"}, []string{digestOf(1), digestOf(2)}))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp := post(t, s.url, "Bearer "+testSecret, envelope("team/app", []string{"v3"}, []string{digestOf(3)}))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a notification during shutdown got %d, want 503", resp.StatusCode)
	}
	r, _ := http.Get(s.url + "/readyz")
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during shutdown: %d", r.StatusCode)
	}

	second := &recorder{}
	s2 := startService(t, serviceConfig(t, dir, nil), second.run, true)
	waitFor(t, "both jobs to resume and finish", 5*time.Second, func() bool {
		return doneResult(s2.Service, "team/app:v1@"+digestOf(1)) == ResultPushed && doneResult(s2.Service, "team/app:v2@"+digestOf(2)) == ResultPushed
	})
	if jobs, runs := second.total(); jobs != 2 || runs != 2 {
		t.Fatalf("resumed %d jobs in %d runs, want 2 and 2", jobs, runs)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
	if n := strings.Count(string(b), `"op":"done"`); n != 2 {
		t.Fatalf("journal holds %d done records, want 2:\n%s", n, b)
	}
	if !strings.Contains(string(b), `"attempt":2`) {
		t.Errorf("the resumed job's attempt was not counted on from the first service's:\n%s", b)
	}
}

var (
	metricLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$`)
	helpLine   = regexp.MustCompile(`^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$`)
)

// TestMetricsExposition checks /metrics against the text format's grammar: HELP and TYPE before each
// metric's samples, valid names, labels and values, cumulative histogram buckets ending with +Inf that
// equals _count, and the counters the service is expected to expose.
func TestMetricsExposition(t *testing.T) {
	rec := &recorder{fn: func(ctx context.Context, j Job, n int) (Outcome, error) {
		if j.Tag == "bad" {
			return Outcome{Result: ResultRejected, Verdict: "incompatible"}, nil
		}
		return Outcome{Result: ResultPushed, Verdict: "compatible"}, nil
	}}
	s := startService(t, serviceConfig(t, t.TempDir(), func(c *Config) { c.Repositories[0].Tags = []string{"*"} }), rec.run, true)
	post(t, s.url, "Bearer "+testSecret, envelope("team/app", []string{"v1", "bad"}, []string{digestOf(1), digestOf(2)}))
	post(t, s.url, "", nil)
	waitFor(t, "jobs", 5*time.Second, func() bool { return len(s.Stats().Done) == 2 })
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	typed := map[string]string{}
	values := map[string]float64{}
	var lastBucket float64 = -1
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if m := helpLine.FindStringSubmatch(line); m != nil {
			if m[1] == "TYPE" {
				if typed[m[2]] != "" {
					t.Errorf("TYPE of %s given twice", m[2])
				}
				typed[m[2]] = m[3]
				lastBucket = -1
			}
			continue
		}
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a valid sample line: %q", line)
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")
		if typed[m[1]] == "" && typed[base] != "histogram" {
			t.Errorf("sample before its TYPE: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Errorf("value of %q: %v", line, err)
		}
		if strings.HasSuffix(m[1], "_bucket") {
			if v < lastBucket {
				t.Errorf("histogram buckets not cumulative at %q", line)
			}
			lastBucket = v
		}
		values[m[1]+m[2]] = v
	}
	want := map[string]float64{
		`crs_serve_jobs_finished_total{result="pushed"}`:   1,
		`crs_serve_jobs_finished_total{result="rejected"}`: 1,
		`crs_serve_verdicts_total{verdict="compatible"}`:   1,
		`crs_serve_verdicts_total{verdict="incompatible"}`: 1,
		`crs_serve_notifications_total{code="202"}`:        1,
		`crs_serve_notifications_total{code="401"}`:        1,
		`crs_serve_jobs{state="queued"}`:                   0,
		`crs_serve_queue_capacity`:                         7,
		`crs_serve_job_duration_seconds_count`:             2,
		`crs_serve_job_duration_seconds_bucket{le="+Inf"}`: 2,
		`crs_serve_ready`:                                  1,
		`crs_serve_events_total{outcome="accepted"}`:       2,
	}
	for k, w := range want {
		if got, ok := values[k]; !ok || got != w {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, w)
		}
	}
	if typed["crs_serve_job_duration_seconds"] != "histogram" || typed["crs_serve_jobs_finished_total"] != "counter" || typed["crs_serve_jobs"] != "gauge" {
		t.Errorf("types %v", typed)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		r, err := http.Get(s.url + p)
		if err != nil || r.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, err, r)
		}
		r.Body.Close()
	}
}

// TestJobsEndpoint: /jobs (with the secret) lists finished jobs with their results as JSON.
func TestJobsEndpoint(t *testing.T) {
	rec := &recorder{}
	s := startService(t, serviceConfig(t, t.TempDir(), nil), rec.run, true)
	post(t, s.url, "Bearer "+testSecret, envelope("team/app", []string{"v1"}, []string{digestOf(1)}))
	waitFor(t, "the job", 5*time.Second, func() bool { return len(s.Stats().Done) == 1 })
	req, _ := http.NewRequest(http.MethodGet, s.url+"/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Done) != 1 || st.Done[0].Result != ResultPushed || st.Done[0].Key != "team/app:v1@"+digestOf(1) {
		t.Fatalf("/jobs: %+v", st)
	}
}

// TestJournalCompaction: a long-running service rewrites its journal from its state, so the file stays
// bounded; what it held survives: after a restart every finished job is still a duplicate and no job runs
// again, and jobs still queued during a compaction are resumed.
func TestJournalCompaction(t *testing.T) {
	old := CompactAfter
	CompactAfter = 30
	defer func() { CompactAfter = old }()
	dir := t.TempDir()
	gate := make(chan struct{})
	rec := &recorder{fn: func(ctx context.Context, j Job, n int) (Outcome, error) {
		if strings.HasPrefix(j.Repository, "team/late") {
			<-gate // still unfinished when the service stops
		}
		return Outcome{Result: ResultPushed}, nil
	}}
	c := serviceConfig(t, dir, func(c *Config) { c.QueueSize = 200; c.Concurrency = 2 })
	s := startService(t, c, rec.run, true)
	auth := "Bearer " + testSecret
	maxLines := 0
	for i := 0; i < 100; i++ {
		if got := post(t, s.url, auth, envelope("team/app", []string{fmt.Sprintf("v%d", i)}, []string{digestOf(i)})).StatusCode; got != http.StatusAccepted {
			t.Fatalf("post %d: %d", i, got)
		}
		if n := s.journal.Lines(); n > maxLines {
			maxLines = n
		}
	}
	waitFor(t, "100 jobs", 10*time.Second, func() bool { return len(s.Stats().Done) >= 100 })
	// Two jobs that block, then two more queued behind them, then enough finished jobs to compact again.
	post(t, s.url, auth, envelope("team/late1", []string{"v1", "v2"}, []string{digestOf(1), digestOf(2)}))
	post(t, s.url, auth, envelope("team/late2", []string{"v1", "v2"}, []string{digestOf(3), digestOf(4)}))
	b, _ := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
	lines := strings.Count(string(b), "\n")
	if maxLines > 2*104+10 || lines > 2*104+10 {
		t.Fatalf("the journal grew to %d lines (now %d) for a state of ~104 jobs: not compacted", maxLines, lines)
	}
	if !strings.Contains(string(b), `"op":"done"`) {
		t.Fatal("no done record in the journal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	go func() { time.Sleep(100 * time.Millisecond); close(gate) }()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	second := &recorder{}
	s2 := startService(t, serviceConfig(t, dir, nil), second.run, true)
	deadline := time.Now().Add(5 * time.Second)
	for j, _ := second.total(); j < 2; j, _ = second.total() {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
			t.Fatalf("the late jobs did not resume: %+v\n%s", s2.Stats(), b[max(0, len(b)-3000):])
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 100; i += 17 {
		if got := post(t, s2.url, auth, envelope("team/app", []string{fmt.Sprintf("v%d", i)}, []string{digestOf(i)})).StatusCode; got != http.StatusAccepted {
			t.Fatalf("post: %d", got)
		}
	}
	time.Sleep(50 * time.Millisecond)
	for k := range second.runs {
		if strings.HasPrefix(k, "team/app:") {
			t.Errorf("%s ran again after the restart", k)
		}
	}
	if got := s2.Metrics().Get(metricEvents, "outcome", "duplicate"); got != 6 {
		t.Errorf("%v duplicates after the restart, want 6", got)
	}
}

// TestAttemptsAcrossRestarts: a job whose every attempt was interrupted by a restart (as if it crashed the
// service) is given up once maxAttempts attempts have started, without running again.
func TestAttemptsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	j, _, err := OpenJournal(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	key := "team/app:v1@" + digestOf(1)
	job := &Job{Key: key, Repository: "team/app", Tag: "v1", Digest: digestOf(1), Target: "x/team/app:v1-layered", Accepted: time.Now()}
	recs := []*Record{{Op: "accept", Key: key, Job: job}}
	for i := 1; i <= 3; i++ {
		recs = append(recs, &Record{Op: "attempt", Key: key, Attempt: i})
	}
	if err := j.Append(recs...); err != nil {
		t.Fatal(err)
	}
	j.Close()
	for _, tc := range []struct {
		max      int
		wantRuns int
		want     string
	}{{3, 0, ResultFailed}, {4, 1, ResultPushed}} {
		d := t.TempDir()
		b, _ := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
		os.WriteFile(filepath.Join(d, "journal.jsonl"), b, 0o600)
		rec := &recorder{}
		s := startService(t, serviceConfig(t, d, func(c *Config) { c.MaxAttempts = tc.max }), rec.run, true)
		waitFor(t, "the resumed job", 5*time.Second, func() bool { return doneResult(s.Service, key) != "" })
		if got := doneResult(s.Service, key); got != tc.want || rec.count(key) != tc.wantRuns {
			t.Errorf("maxAttempts %d: result %s after %d runs, want %s after %d", tc.max, got, rec.count(key), tc.want, tc.wantRuns)
		}
	}
}
