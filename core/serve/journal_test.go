package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJournalReplay: unfinished jobs come back (with their attempt counts), finished ones are remembered,
// a torn last line (a crash mid-write, never acknowledged) is skipped, and the file is compacted.
func TestJournalReplay(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state", "journal.jsonl")
	j, rep, err := OpenJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unfinished)+len(rep.Done)+rep.Skipped != 0 {
		t.Fatalf("a new journal replayed %+v", rep)
	}
	now := time.Now().UTC()
	job := func(k string) *Job {
		return &Job{Key: k, Repository: "r", Tag: k, Digest: "sha256:x", Target: "t", Accepted: now}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(j.Append(&Record{Op: "accept", Key: "a", Job: job("a")}, &Record{Op: "accept", Key: "b", Job: job("b")},
		&Record{Op: "accept", Key: "c", Job: job("c")}))
	must(j.Append(&Record{Op: "attempt", Key: "a", Attempt: 1}, &Record{Op: "attempt", Key: "b", Attempt: 1}))
	must(j.Append(&Record{Op: "done", Key: "a", Result: ResultPushed, Layered: "t@sha256:y"}))
	must(j.Append(&Record{Op: "attempt", Key: "b", Attempt: 2}))
	must(j.Close())
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteString(`{"op":"accept","key":"d","job":{"key":"d","rep`) // torn
	must(err)
	f.Close()

	j, rep, err = OpenJournal(p)
	must(err)
	defer j.Close()
	var keys []string
	for _, u := range rep.Unfinished {
		keys = append(keys, fmt.Sprintf("%s/%d", u.Key, u.Attempts))
	}
	if strings.Join(keys, ",") != "b/2,c/0" {
		t.Errorf("unfinished %v, want b with 2 attempts and c with none", keys)
	}
	if len(rep.Done) != 1 || rep.Done[0].Key != "a" || rep.Done[0].Result != ResultPushed {
		t.Errorf("done %+v", rep.Done)
	}
	if rep.Skipped != 1 {
		t.Errorf("skipped %d lines, want the torn one", rep.Skipped)
	}
	b, _ := os.ReadFile(p)
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("compacted journal has %d lines, want 3 (done a, accept b, accept c):\n%s", n, b)
	}
	if _, err := os.Stat(p + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the compaction's temporary file is left: %v", err)
	}
}

// TestJournalKeepDone: compaction keeps at most KeepDone finished jobs, the most recent.
func TestJournalKeepDone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal.jsonl")
	var b strings.Builder
	for i := 0; i < KeepDone+5; i++ {
		fmt.Fprintf(&b, `{"op":"done","key":"k%d","result":"pushed"}`+"\n", i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	j, rep, err := OpenJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if len(rep.Done) != KeepDone || rep.Done[0].Key != "k5" {
		t.Fatalf("kept %d, first %s", len(rep.Done), rep.Done[0].Key)
	}
}
