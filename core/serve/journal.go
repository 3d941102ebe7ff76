package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Job is one pushed tag to instrument. Its Key (REPOSITORY:TAG@DIGEST) is what notifications are
// deduplicated by: the same digest pushed to the same tag again is the same job.
type Job struct {
	Key        string    `json:"key"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest"`
	MediaType  string    `json:"mediaType,omitempty"`
	Target     string    `json:"target"` // REGISTRY/REPO:TAG the instrumented image is pushed to
	EventID    string    `json:"eventId,omitempty"`
	Accepted   time.Time `json:"accepted"`
	Attempts   int       `json:"attempts,omitempty"` // attempts started so far (also across restarts)

	AllowUnhookableEntrypoint bool `json:"allowUnhookableEntrypoint,omitempty"`
	SkipIncompatiblePlatforms bool `json:"skipIncompatiblePlatforms,omitempty"`
}

// Results of finished jobs (terminal; label values of crs_serve_jobs_finished_total).
const (
	ResultPushed     = "pushed"     // the instrumented image was pushed
	ResultPresent    = "present"    // the target already held the instrumented image of this digest: nothing pushed
	ResultRejected   = "rejected"   // the image is incompatible: nothing pushed, the report is kept
	ResultSkipped    = "skipped"    // the image is crs-ci's own output
	ResultSuperseded = "superseded" // the tag moved to another digest (or was deleted) before the job ran
	ResultFailed     = "failed"     // gave up: attempts exhausted, or a non-retryable error
)

// Record is one line of the journal.
type Record struct {
	Op      string    `json:"op"` // accept | attempt | done
	Key     string    `json:"key"`
	Time    time.Time `json:"time"`
	Job     *Job      `json:"job,omitempty"`     // accept
	Attempt int       `json:"attempt,omitempty"` // attempt
	Result  string    `json:"result,omitempty"`  // done
	Verdict string    `json:"verdict,omitempty"` // done
	Layered string    `json:"layered,omitempty"` // done: REF@DIGEST that was pushed or found
	Report  string    `json:"report,omitempty"`  // done: the JSON report kept for the job
	Error   string    `json:"error,omitempty"`   // done (failed)
}

// Journal is an append-only file of JSON lines. Append returns only after the records are on disk
// (fsync): the webhook acknowledges a notification only after its job's accept record is durable, so a
// crash right after the acknowledgement loses nothing. Opening replays it and compacts it.
type Journal struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	lines int
}

// KeepDone is how many finished jobs a compaction keeps (for deduplication and /jobs).
const KeepDone = 10000

// Replayed is the state a journal held when it was opened.
type Replayed struct {
	Unfinished []*Job    // accepted, never finished: to run again, oldest first
	Done       []*Record // finished jobs, oldest first (at most KeepDone)
	Skipped    int       // lines that could not be read (a torn last line after a crash)
}

// OpenJournal replays the journal at path (creating it when missing), rewrites it compacted (the accept
// records of unfinished jobs with their attempt counts, and the last KeepDone done records), and opens it
// for appending.
func OpenJournal(path string) (*Journal, *Replayed, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("creating the journal directory: %w", err)
	}
	rep, err := replay(path)
	if err != nil {
		return nil, nil, err
	}
	j := &Journal{path: path}
	if err := j.Rewrite(rep.Unfinished, rep.Done); err != nil {
		return nil, nil, err
	}
	return j, rep, nil
}

// Rewrite replaces the journal with the given state — done records, then the accept records of unfinished
// jobs — atomically (a temporary file, fsync, rename, fsync of the directory), and reopens it for
// appending. The service calls it with its in-memory state to keep the file from growing without bound.
func (j *Journal) Rewrite(unfinished []*Job, done []*Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	tmp := j.path + ".compact"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("compacting the journal %s: %w", j.path, err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, d := range done {
		_ = enc.Encode(d)
	}
	for _, job := range unfinished {
		_ = enc.Encode(&Record{Op: "accept", Key: job.Key, Time: job.Accepted, Job: job})
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting the journal %s: %w", j.path, err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		j.f = nil
		return fmt.Errorf("opening the journal %s: %w", j.path, err)
	}
	j.lines = len(done) + len(unfinished)
	return nil
}

// Lines is the number of records in the file (since it was last rewritten).
func (j *Journal) Lines() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lines
}

func replay(path string) (*Replayed, error) {
	rep := &Replayed{}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return rep, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the journal: %w", err)
	}
	jobs := map[string]*Job{}
	var order []string
	done := map[string]*Record{}
	var doneOrder []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil || r.Key == "" {
			rep.Skipped++ // a torn write was never acknowledged: nothing is lost by skipping it
			continue
		}
		switch r.Op {
		case "accept":
			if r.Job == nil {
				rep.Skipped++
				continue
			}
			if _, ok := jobs[r.Key]; !ok {
				order = append(order, r.Key)
			}
			j := *r.Job
			jobs[r.Key] = &j
			delete(done, r.Key)
		case "attempt":
			if j := jobs[r.Key]; j != nil && r.Attempt > j.Attempts {
				j.Attempts = r.Attempt
			}
		case "done":
			rr := r
			if _, ok := done[r.Key]; !ok {
				doneOrder = append(doneOrder, r.Key)
			}
			done[r.Key] = &rr
			delete(jobs, r.Key)
		default:
			rep.Skipped++
		}
	}
	for _, k := range order {
		if j := jobs[k]; j != nil {
			rep.Unfinished = append(rep.Unfinished, j)
			delete(jobs, k) // a key accepted twice appears once
		}
	}
	for _, k := range doneOrder {
		if d := done[k]; d != nil {
			rep.Done = append(rep.Done, d)
			delete(done, k)
		}
	}
	if len(rep.Done) > KeepDone {
		rep.Done = rep.Done[len(rep.Done)-KeepDone:]
	}
	return rep, nil
}

// Append writes records as one write and waits until they are on disk.
func (j *Journal) Append(recs ...*Record) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("encoding a journal record: %w", err)
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("the journal %s is closed", j.path)
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("appending to the journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing the journal %s: %w", j.path, err)
	}
	j.lines += len(recs)
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
