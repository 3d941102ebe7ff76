package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// Outcome is what a finished attempt produced.
type Outcome struct {
	Result  string // one of the Result* constants (not ResultFailed: failures are errors)
	Verdict string // compatible | incompatible, when the image was checked
	Layered string // REF@DIGEST pushed or found
	Report  string // path of the JSON report kept for the job
	Message string
}

// Runner runs one attempt of a job. An error of kind exitcode.Operational (registry, network, I/O) or a
// deadline is retried with backoff; any other error fails the job for good.
type Runner func(ctx context.Context, j Job) (Outcome, error)

// jobState is a job the service knows about and has not finished.
type jobState struct {
	job     Job
	state   string // queued | running | retrying
	lastErr string
}

// Service is `crs-ci serve`: the webhook, the journal, the bounded queue and its workers, health and metrics.
type Service struct {
	cfg     *Config
	log     *slog.Logger
	journal *Journal
	metrics *Metrics
	run     Runner

	mu       sync.Mutex
	cond     *sync.Cond // signalled when pending grows or the service closes
	pending  []string   // keys waiting to run, FIFO
	retrying int        // jobs waiting for their backoff to pass
	active   map[string]*jobState
	done     map[string]*Record
	doneKeys []string // done keys, oldest first (bounded by KeepDone)
	closing  bool
	maxQueue int // the most jobs ever waiting at once (tests read it through Stats)

	baseCtx context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	timers  sync.WaitGroup
}

// Stats is a snapshot of the queue for /jobs and tests.
type Stats struct {
	Queued   int       `json:"queued"`
	Running  int       `json:"running"`
	Retrying int       `json:"retrying"`
	MaxQueue int       `json:"maxQueued"`
	Active   []Job     `json:"active"`
	Done     []*Record `json:"done"` // the most recent, newest last (at most 200)
}

// New opens the journal in cfg.StateDir, resumes its unfinished jobs and returns the service; Start runs
// its workers. run is the job runner (NewInstrumentRunner for the real one).
func New(cfg *Config, log *slog.Logger, run Runner) (*Service, error) {
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	j, rep, err := OpenJournal(filepath.Join(cfg.StateDir, "journal.jsonl"))
	if err != nil {
		return nil, exitcode.Operationalf("%w", err)
	}
	s := &Service{cfg: cfg, log: log, journal: j, metrics: NewMetrics(), run: run,
		active: map[string]*jobState{}, done: map[string]*Record{}}
	s.cond = sync.NewCond(&s.mu)
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	for _, d := range rep.Done {
		s.rememberDone(d)
	}
	for _, job := range rep.Unfinished {
		s.active[job.Key] = &jobState{job: *job, state: "queued"}
		s.pending = append(s.pending, job.Key)
	}
	if rep.Skipped > 0 {
		log.Warn("journal lines skipped (a torn write from a crash is never an acknowledged job)", "skipped", rep.Skipped)
	}
	log.Info("journal replayed", "path", j.path, "resumed", len(rep.Unfinished), "done", len(rep.Done))
	s.metrics.Set(metricQueueCapacity, float64(cfg.QueueSize))
	s.gauges()
	return s, nil
}

// Metrics are the service's metrics.
func (s *Service) Metrics() *Metrics { return s.metrics }

// Start starts the workers.
func (s *Service) Start() {
	for i := 0; i < s.cfg.Concurrency; i++ {
		s.workers.Add(1)
		go s.worker()
	}
}

// signal wakes the workers; call with s.mu held.
func (s *Service) signal() { s.cond.Broadcast() }

// gauges refreshes the state gauges; call with s.mu held (or before the service runs).
func (s *Service) gauges() {
	running := 0
	for _, st := range s.active {
		if st.state == "running" {
			running++
		}
	}
	s.metrics.Set(metricJobs, float64(len(s.pending)), "state", "queued")
	s.metrics.Set(metricJobs, float64(running), "state", "running")
	s.metrics.Set(metricJobs, float64(s.retrying), "state", "retrying")
	ready := 1.0
	if s.closing {
		ready = 0
	}
	s.metrics.Set(metricReady, ready)
}

func (s *Service) rememberDone(r *Record) {
	if _, ok := s.done[r.Key]; !ok {
		s.doneKeys = append(s.doneKeys, r.Key)
	}
	s.done[r.Key] = r
	if len(s.doneKeys) > KeepDone {
		delete(s.done, s.doneKeys[0])
		s.doneKeys = s.doneKeys[1:]
	}
}

// ErrQueueFull is returned by Submit when accepting the jobs would exceed the queue bound.
var ErrQueueFull = errors.New("the job queue is full")

// ErrClosing is returned by Submit while the service shuts down.
var ErrClosing = errors.New("the service is shutting down")

// Submitted counts what Submit made of a batch of jobs.
type Submitted struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// Submit records new jobs durably (one fsync for the batch) and queues them. Jobs already queued, running
// or done are duplicates. Nothing is recorded when the batch does not fit in the queue (ErrQueueFull): the
// sender retries the whole batch later, and duplicates are harmless.
func (s *Service) Submit(jobs []*Job) (Submitted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return Submitted{}, ErrClosing
	}
	var out Submitted
	var fresh []*Job
	seen := map[string]bool{}
	for _, j := range jobs {
		if s.active[j.Key] != nil || s.done[j.Key] != nil || seen[j.Key] {
			out.Duplicates++
			continue
		}
		seen[j.Key] = true
		fresh = append(fresh, j)
	}
	if len(fresh) == 0 {
		return out, nil
	}
	if len(s.pending)+s.retrying+len(fresh) > s.cfg.QueueSize {
		return out, ErrQueueFull
	}
	now := time.Now().UTC()
	recs := make([]*Record, len(fresh))
	for i, j := range fresh {
		j.Accepted = now
		recs[i] = &Record{Op: "accept", Key: j.Key, Time: now, Job: j}
	}
	if err := s.journal.Append(recs...); err != nil {
		return out, exitcode.Operationalf("%w", err)
	}
	for _, j := range fresh {
		s.active[j.Key] = &jobState{job: *j, state: "queued"}
		s.pending = append(s.pending, j.Key)
		s.log.Info("job accepted", "job", j.Key, "target", j.Target, "event", j.EventID)
	}
	if n := len(s.pending) + s.retrying; n > s.maxQueue {
		s.maxQueue = n
	}
	out.Accepted = len(fresh)
	s.gauges()
	s.signal()
	return out, nil
}

// next blocks until a job is pending (it is marked running) or the service closes (nil).
func (s *Service) next() *jobState {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closing && len(s.pending) == 0 {
		s.cond.Wait()
	}
	if s.closing {
		return nil
	}
	key := s.pending[0]
	s.pending = s.pending[1:]
	st := s.active[key]
	st.state = "running"
	st.job.Attempts++
	s.gauges()
	return st
}

func (s *Service) worker() {
	defer s.workers.Done()
	for {
		st := s.next()
		if st == nil {
			return
		}
		s.execute(st)
	}
}

// execute runs one attempt and records what came of it.
func (s *Service) execute(st *jobState) {
	job := st.job
	log := s.log.With("job", job.Key, "attempt", job.Attempts)
	if job.Attempts > s.cfg.MaxAttempts {
		// Resumed after restarts that interrupted every attempt (a job that crashes the service, say).
		err := fmt.Errorf("%d attempts started without an outcome (maxAttempts %d): given up", job.Attempts-1, s.cfg.MaxAttempts)
		s.finish(st, &Record{Op: "done", Key: job.Key, Time: time.Now().UTC(), Result: ResultFailed, Error: err.Error()})
		log.Error("job failed", "error", err.Error())
		return
	}
	if err := s.journal.Append(&Record{Op: "attempt", Key: job.Key, Time: time.Now().UTC(), Attempt: job.Attempts}); err != nil {
		log.Error("journal", "error", err.Error())
	}
	log.Info("job started", "target", job.Target)
	ctx, cancel := context.WithTimeout(s.baseCtx, s.cfg.JobTimeout)
	start := time.Now()
	out, err := s.run(ctx, job)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	elapsed := time.Since(start)
	s.metrics.Observe(elapsed.Seconds())

	if err == nil {
		rec := &Record{Op: "done", Key: job.Key, Time: time.Now().UTC(), Result: out.Result, Verdict: out.Verdict,
			Layered: out.Layered, Report: out.Report}
		s.finish(st, rec)
		if out.Verdict != "" {
			s.metrics.Add(metricVerdicts, 1, "verdict", out.Verdict)
		}
		log.Info("job finished", "result", out.Result, "verdict", out.Verdict, "layered", out.Layered,
			"report", out.Report, "message", out.Message, "seconds", elapsed.Seconds())
		return
	}

	s.mu.Lock()
	abandoned := s.baseCtx.Err() != nil
	s.mu.Unlock()
	if abandoned {
		// Shut down mid-job: no record, so the next start runs it again.
		log.Warn("job abandoned by the shutdown; it resumes at the next start", "error", err.Error())
		s.mu.Lock()
		st.state = "abandoned"
		s.gauges()
		s.mu.Unlock()
		return
	}
	kind := "other"
	retryable := false
	switch {
	case timedOut:
		kind, retryable = "timeout", true
		err = fmt.Errorf("attempt timed out after %s (jobTimeout): %w", s.cfg.JobTimeout, err)
	case exitcode.Of(err) == exitcode.Operational:
		kind, retryable = "operational", true
	}
	s.metrics.Add(metricAttemptFailures, 1, "kind", kind)
	if retryable && job.Attempts < s.cfg.MaxAttempts {
		delay := s.backoff(job.Attempts)
		log.Warn("job attempt failed; retrying", "error", err.Error(), "kind", kind, "retry_in_seconds", delay.Seconds())
		s.mu.Lock()
		st.state, st.lastErr = "retrying", err.Error()
		s.retrying++
		s.gauges()
		s.mu.Unlock()
		s.timers.Add(1)
		go func() {
			defer s.timers.Done()
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.baseCtx.Done():
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.retrying--
			st.state = "queued"
			s.pending = append(s.pending, job.Key)
			s.gauges()
			s.signal()
		}()
		return
	}
	rec := &Record{Op: "done", Key: job.Key, Time: time.Now().UTC(), Result: ResultFailed, Error: err.Error()}
	s.finish(st, rec)
	log.Error("job failed", "error", err.Error(), "kind", kind, "attempts", job.Attempts)
}

func (s *Service) backoff(attempt int) time.Duration {
	d := s.cfg.Backoff
	for i := 1; i < attempt && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > s.cfg.MaxBackoff {
		d = s.cfg.MaxBackoff
	}
	return d
}

// CompactAfter is how many journal lines trigger a rewrite of the journal from the service's state: twice
// what the state needs, and at least this many.
var CompactAfter = 20000

func (s *Service) finish(st *jobState, rec *Record) {
	s.metrics.Add(metricFinished, 1, "result", rec.Result)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Appended under s.mu, so that a compaction (also under s.mu) never misses a done record.
	if err := s.journal.Append(rec); err != nil {
		// The job stays unfinished on disk: the next start runs it again, and the target check before
		// pushing keeps it from pushing twice.
		s.log.Error("journal: the done record was not written", "job", rec.Key, "error", err.Error())
	}
	delete(s.active, st.job.Key)
	s.rememberDone(rec)
	s.gauges()
	if n := s.journal.Lines(); n > CompactAfter && n > 2*(len(s.active)+len(s.doneKeys)) {
		s.compactLocked()
	}
}

// compactLocked rewrites the journal from the in-memory state (unfinished jobs with their attempt counts,
// the remembered done records); call with s.mu held.
func (s *Service) compactLocked() {
	var unfinished []*Job
	for _, key := range s.acceptOrder() {
		j := s.active[key].job
		unfinished = append(unfinished, &j)
	}
	done := make([]*Record, 0, len(s.doneKeys))
	for _, k := range s.doneKeys {
		done = append(done, s.done[k])
	}
	before := s.journal.Lines()
	if err := s.journal.Rewrite(unfinished, done); err != nil {
		s.log.Error("journal compaction failed; appending goes on", "error", err.Error())
		return
	}
	s.log.Info("journal compacted", "lines_before", before, "lines", s.journal.Lines())
}

// acceptOrder lists the unfinished jobs' keys, oldest accepted first.
func (s *Service) acceptOrder() []string {
	keys := make([]string, 0, len(s.active))
	for k := range s.active {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		ja, jb := s.active[keys[a]].job, s.active[keys[b]].job
		if !ja.Accepted.Equal(jb.Accepted) {
			return ja.Accepted.Before(jb.Accepted)
		}
		return keys[a] < keys[b]
	})
	return keys
}

// Stats returns a snapshot of the queue.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Queued: len(s.pending), Retrying: s.retrying, MaxQueue: s.maxQueue, Active: []Job{}, Done: []*Record{}}
	for _, a := range s.active {
		if a.state == "running" {
			st.Running++
		}
		st.Active = append(st.Active, a.job)
	}
	keys := s.doneKeys
	if len(keys) > 200 {
		keys = keys[len(keys)-200:]
	}
	for _, k := range keys {
		st.Done = append(st.Done, s.done[k])
	}
	return st
}

// Shutdown stops taking jobs, gives running jobs until ctx ends (cfg.ShutdownGrace in serve) to finish,
// then cancels them; abandoned and queued jobs stay unfinished in the journal and resume at the next start.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.gauges()
	s.signal()
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() { s.workers.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		s.log.Warn("shutdown grace over: cancelling running jobs")
		s.cancel()
		<-finished
	}
	s.cancel()
	s.timers.Wait()
	s.mu.Lock()
	left := len(s.active)
	s.mu.Unlock()
	s.log.Info("stopped", "unfinished_jobs", left)
	return s.journal.Close()
}

// Handler is the HTTP interface: the webhook (POST cfg.Webhook.Path), /healthz, /readyz, /metrics and /jobs.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(s.cfg.Webhook.Path, s.webhook)
	if s.cfg.Webhook.HarborPath != "" {
		mux.HandleFunc(s.cfg.Webhook.HarborPath, func(w http.ResponseWriter, r *http.Request) {
			s.receive(w, r, s.cfg.Webhook.HarborHeader, s.harborJobs)
		})
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if closing {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "shutting down\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = s.metrics.Write(w)
	})
	mux.HandleFunc("/jobs", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r, s.cfg.Webhook.Header) {
			s.unauthorized(w, s.cfg.Webhook.Header)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Stats())
	})
	return mux
}

func (s *Service) authorized(r *http.Request, header string) bool {
	got := r.Header.Get(header)
	want := s.cfg.Secret()
	ok := subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	okBearer := subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+want)) == 1
	return want != "" && (ok || okBearer)
}

func (s *Service) unauthorized(w http.ResponseWriter, header string) {
	s.metrics.Add(metricNotifications, 1, "code", "401")
	http.Error(w, "missing or wrong shared secret header "+header, http.StatusUnauthorized)
}

// webhook receives the distribution registry's notification envelopes.
func (s *Service) webhook(w http.ResponseWriter, r *http.Request) {
	s.receive(w, r, s.cfg.Webhook.Header, s.distributionJobs)
}

// distributionJobs is the distribution webhook's body handling: the jobs of an envelope and the ignored events.
func (s *Service) distributionJobs(body []byte) ([]*Job, map[string]int, error) {
	env, err := ParseEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	var jobs []*Job
	ignored := map[string]int{}
	for _, e := range env.Events {
		d := s.cfg.Decide(e)
		if d.Job == nil {
			s.ignore(ignored, d.Reason, "repository", e.Target.Repository, "tag", e.Target.Tag,
				"digest", e.Target.Digest, "action", e.Action)
			continue
		}
		jobs = append(jobs, d.Job)
	}
	return jobs, ignored, nil
}

// ignore counts and logs an ignored event.
func (s *Service) ignore(ignored map[string]int, reason string, attrs ...any) {
	ignored[reason]++
	s.metrics.Add(metricEvents, 1, "outcome", "ignored:"+reason)
	s.log.Debug("event ignored", append([]any{"reason", reason}, attrs...)...)
}

// receive is a webhook: the shared secret in header, then the body turned into jobs by jobsOf (an error
// is a 400), recorded durably and queued (every webhook format shares the journal, dedup and queue).
func (s *Service) receive(w http.ResponseWriter, r *http.Request, header string, jobsOf func([]byte) ([]*Job, map[string]int, error)) {
	answer := func(code int, v any) {
		s.metrics.Add(metricNotifications, 1, "code", strconv.Itoa(code))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if !s.authorized(r, header) {
		s.log.Warn("notification refused: no valid shared secret", "remote", r.RemoteAddr, "path", r.URL.Path)
		s.unauthorized(w, header)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		answer(http.StatusMethodNotAllowed, map[string]string{"error": "POST a notification envelope"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.Webhook.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			answer(http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("envelope larger than %d bytes", s.cfg.Webhook.MaxBody)})
			return
		}
		answer(http.StatusBadRequest, map[string]string{"error": "reading the body: " + err.Error()})
		return
	}
	jobs, ignored, err := jobsOf(body)
	if err != nil {
		answer(http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	sub, err := s.Submit(jobs)
	switch {
	case errors.Is(err, ErrQueueFull) || errors.Is(err, ErrClosing):
		// 503 with Retry-After: the registry keeps the events and sends them again; nothing was recorded.
		retry := int(s.cfg.Backoff.Seconds())
		if retry < 1 {
			retry = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		s.metrics.Add(metricEvents, float64(len(jobs)), "outcome", "deferred")
		s.log.Warn("notification deferred", "reason", err.Error(), "jobs", len(jobs))
		answer(http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	case err != nil:
		s.log.Error("notification not recorded", "error", err.Error())
		answer(http.StatusInternalServerError, map[string]string{"error": "recording the jobs: " + err.Error()})
		return
	}
	s.metrics.Add(metricEvents, float64(sub.Accepted), "outcome", "accepted")
	s.metrics.Add(metricEvents, float64(sub.Duplicates), "outcome", "duplicate")
	answer(http.StatusAccepted, map[string]any{"accepted": sub.Accepted, "duplicates": sub.Duplicates, "ignored": ignored})
}

// ListenAndServe serves the handler on cfg.Listen until ctx ends, then shuts the service down gracefully:
// the listener closes first (notifications are then retried by the registry against the next instance),
// running jobs get cfg.ShutdownGrace.
func (s *Service) ListenAndServe(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return exitcode.Operationalf("listening on %s: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	s.Start()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "webhook", s.cfg.Webhook.Path, "harborWebhook", s.cfg.Webhook.HarborPath, "registry", s.cfg.Registry,
		"concurrency", s.cfg.Concurrency, "queueSize", s.cfg.QueueSize)
	if ready != nil {
		ready(ln.Addr().String())
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("shutting down")
	s.mu.Lock()
	s.closing = true // readyz answers 503 and notifications get 503 from now on
	s.gauges()
	s.mu.Unlock()
	grace, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	_ = srv.Shutdown(grace)
	if err := s.Shutdown(grace); err != nil {
		return exitcode.Operationalf("closing the journal: %w", err)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return exitcode.Operationalf("serving on %s: %w", s.cfg.Listen, serveErr)
	}
	return nil
}
