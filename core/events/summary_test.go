package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func summarizeFiles(t *testing.T, files ...string) *Summary {
	t.Helper()
	s := NewSummary(DefaultLimits)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := ReadAll(f, filepath.Base(name), func(e *Event) error { s.Add(e); return nil })
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		s.AddStats(st)
	}
	return s
}

func TestSummaryCounts(t *testing.T) {
	s := summarizeFiles(t, "testdata/audit-web.jsonl")
	if s.Events != 22 || s.WouldDeny.Total != 3 || s.Denied.Total != 0 || s.Alerts.Total != 1 {
		t.Fatalf("events %d would-deny %d denied %d alerts %d", s.Events, s.WouldDeny.Total, s.Denied.Total, s.Alerts.Total)
	}
	first := s.WouldDeny.List()[0]
	if first.Program != "/usr/bin/curl" || first.Subject != "/etc/shadow" || first.Count != 2 || first.Rule != "no-secrets" {
		t.Errorf("first would-deny group = %+v", first)
	}
	if got := s.First.Format("15:04:05.000000000"); got != "10:00:00.000000001" {
		t.Errorf("first seen = %s", got)
	}
	want := map[string]int64{"/etc/nginx/": 2, "/usr/share/nginx/": 4, "10.0.3.0/24:5432": 2,
		"2001:db8::/64:443": 1, "unix:/run/php/": 1, "syscall getrandom": 1, "/tmp/nginx-cache/": 2}
	got := map[string]int64{}
	for _, b := range s.ByPrefix.Top(0) {
		got[b.Key] = b.Count
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("prefix %q = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if len(s.Policies) != 1 || s.Policies[0] != testPolicy {
		t.Errorf("policies = %v", s.Policies)
	}
}

func TestSummaryInterleaved(t *testing.T) {
	s := summarizeFiles(t, "testdata/interleaved.log")
	if s.Events != 6 || s.Errors.Len() != 1 || s.Dropped != 17 || s.WouldDeny.Total != 1 || s.Input.Malformed != 3 || s.Input.Skipped != 4 {
		t.Fatalf("summary = events %d dropped %d would-deny %d input %+v", s.Events, s.Dropped, s.WouldDeny.Total, s.Input)
	}
}

// TestRenderGolden renders the summaries of the committed streams in every format and compares them with
// golden files (go test -run TestRenderGolden -update rewrites them).
func TestRenderGolden(t *testing.T) {
	inputs := map[string][]string{
		"audit-web":   {"testdata/audit-web.jsonl"},
		"interleaved": {"testdata/interleaved.log"},
		"both":        {"testdata/audit-web.jsonl", "testdata/interleaved.log"},
	}
	for name, files := range inputs {
		for _, format := range Formats {
			t.Run(name+"."+format, func(t *testing.T) {
				s := summarizeFiles(t, files...)
				var buf bytes.Buffer
				if err := Render(&buf, format, s, RenderOptions{}); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", "golden", name+"."+format)
				if *update {
					os.MkdirAll(filepath.Dir(golden), 0o755)
					if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create)", err)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("%s differs from golden:\n%s", golden, buf.String())
				}
			})
		}
	}
}

func TestRenderWouldDenyFirst(t *testing.T) {
	s := summarizeFiles(t, "testdata/audit-web.jsonl")
	for _, format := range []string{"text", "markdown"} {
		var buf bytes.Buffer
		if err := Render(&buf, format, s, RenderOptions{}); err != nil {
			t.Fatal(err)
		}
		out := strings.ToLower(buf.String())
		wd, byAction := strings.Index(out, "would have been denied"), strings.Index(out, "action")
		if wd < 0 || byAction < 0 || wd > byAction {
			t.Errorf("%s: the would-have-been-denied section is not first:\n%s", format, buf.String())
		}
	}
	var buf bytes.Buffer
	if err := Render(&buf, "json", s, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SchemaVersion int `json:"schemaVersion"`
		WouldDeny     struct {
			Total  int64   `json:"total"`
			Groups []Group `json:"groups"`
		} `json:"wouldDeny"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != 1 || doc.WouldDeny.Total != 3 || len(doc.WouldDeny.Groups) != 2 {
		t.Errorf("json doc = %+v", doc)
	}
	if err := Render(&buf, "yaml", s, RenderOptions{}); err == nil || !strings.Contains(err.Error(), "known: text, json, markdown") {
		t.Errorf("unknown format error = %v", err)
	}
}

func TestCounterTop(t *testing.T) {
	c := NewCounter(3)
	for _, k := range []string{"a", "b", "b", "c", "c", "c", "d", "e"} {
		c.Add(k, time.Time{})
	}
	got := c.Top(2)
	want := []Bucket{{Key: "c", Count: 3}, {Key: "b", Count: 2}, {Key: OtherKey, Count: 3}}
	if len(got) != len(want) {
		t.Fatalf("Top(2) = %+v", got)
	}
	for i := range want {
		if got[i].Key != want[i].Key || got[i].Count != want[i].Count {
			t.Errorf("Top(2)[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	all := c.Top(0)
	if all[len(all)-1].Key != OtherKey || all[len(all)-1].Count != 2 {
		t.Errorf("Top(0) = %+v: want the other bucket (d, e) last", all)
	}
}

func TestAddrPrefix(t *testing.T) {
	tests := map[string]string{
		"10.1.2.3:443":           "10.1.2.0/24:443",
		"[::ffff:10.1.2.3]:443":  "10.1.2.0/24:443",
		"[2001:db8:1:2::5]:8443": "2001:db8:1:2::/64:8443",
		"unix:/run/docker.sock":  "unix:/run/",
		"garbage":                "garbage",
	}
	for in, want := range tests {
		if got := AddrPrefix(in); got != want {
			t.Errorf("AddrPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSummaryRecorded summarises the stream the real probe wrote (testdata/recorded).
func TestSummaryRecorded(t *testing.T) {
	s := summarizeFiles(t, "testdata/recorded/bookworm-audit.jsonl")
	if s.Input.Lines != s.Events || s.Input.Skipped+s.Input.Malformed != 0 {
		t.Fatalf("the recorded stream is not read whole: %+v, %d events", s.Input, s.Events)
	}
	wd := s.WouldDeny.List()
	if s.WouldDeny.Total != 1 || wd[0].Program != "/usr/bin/cat" || wd[0].Subject != "/etc/shadow" || wd[0].Rule != "no-secrets" {
		t.Errorf("would-deny = %+v", wd)
	}
	if al := s.Alerts.List(); s.Alerts.Total != 1 || al[0].Subject != "/usr/bin/bash" || al[0].Rule != "watch-shells" {
		t.Errorf("alerts = %+v", al)
	}
	ops := map[string]int64{}
	for _, b := range s.ByOp.Top(0) {
		ops[b.Key] = b.Count
	}
	for _, op := range []string{"read", "write", "exec", "rename", "unlink", "mkdir", "chmod", "link", "connect", "bind", "syscall"} {
		if ops[op] == 0 {
			t.Errorf("no %s events in the recorded stream (ops: %v)", op, ops)
		}
	}
	if len(s.Policies) != 1 || len(s.Policies[0]) != 64 {
		t.Errorf("policies = %v", s.Policies)
	}
}
