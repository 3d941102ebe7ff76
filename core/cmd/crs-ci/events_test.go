package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/exitcode"
)

const (
	auditWeb    = "../../events/testdata/audit-web.jsonl"
	interleaved = "../../events/testdata/interleaved.log"
	recordedEv  = "../../events/testdata/recorded/bookworm-audit.jsonl"
)

func TestEventsSummarize(t *testing.T) {
	stdinData, err := os.ReadFile(interleaved)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(recordedEv)
	if err != nil {
		t.Fatal(err)
	}
	both := fmt.Sprintf(`"events": %d`, 22+bytes.Count(rec, []byte("\n")))
	tests := []struct {
		name     string
		args     []string
		stdin    []byte
		code     int
		contains []string
	}{
		{"text", []string{auditWeb}, nil, 0, []string{"22 events", "WOULD HAVE BEEN DENIED (audit mode)", "/etc/shadow", "no-secrets"}},
		{"markdown", []string{"--format", "markdown", auditWeb}, nil, 0, []string{"### crs-ci runtime events", "| 2 | `/usr/bin/curl` | read | `/etc/shadow` |"}},
		{"stdin with other log lines", []string{"-"}, stdinData, 0, []string{"6 events", "4 non-event lines skipped", "3 malformed lines", "dropped 17 events"}},
		{"several files, flags after them", []string{auditWeb, recordedEv, "--format", "json"}, nil, 0, []string{`"schemaVersion": 1`, both}},
		{"fail on deny", []string{"--fail-on-deny", auditWeb}, nil, exitcode.Rejected, []string{"3 events were denied or would have been denied"}},
		{"no deny, no failure", []string{"--fail-on-deny", "-"}, []byte(`{"pid":1,"program":"/p","op":"read","path":"/a","action":"allow","rule":"","mode":"audit","policy":"p"}` + "\n"), 0, []string{"1 event "}},
		{"no files", nil, nil, exitcode.Usage, []string{"name event files"}},
		{"bad format", []string{"--format", "xml", auditWeb}, nil, exitcode.Usage, []string{`--format "xml"`}},
		{"missing file", []string{"/nonexistent/events.log"}, nil, exitcode.Operational, []string{"reading events: open /nonexistent/events.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdin = bytes.NewReader(tt.stdin)
			defer func() { stdin = os.Stdin }()
			code, out, errs := crs(t, append([]string{"events", "summarize"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, c := range tt.contains {
				if !strings.Contains(out+errs, c) {
					t.Errorf("output lacks %q:\n%s%s", c, out, errs)
				}
			}
		})
	}
}

func TestEventsSummarizeOutputAppend(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "step-summary.md")
	os.WriteFile(summary, []byte("# earlier step\n"), 0o644)
	if code, out, errs := crs(t, "events", "summarize", "--format", "markdown", "--output", summary, "--append", auditWeb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	b, _ := os.ReadFile(summary)
	if !strings.HasPrefix(string(b), "# earlier step\n### crs-ci runtime events") {
		t.Errorf("appended summary:\n%s", b)
	}
}

// syncBuffer is a bytes.Buffer safe for the command's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runAsync(args ...string) (*syncBuffer, *syncBuffer, chan int) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(append([]string{"crs-ci"}, args...), out, errb) }()
	return out, errb, done
}

func line(op, subj, action, rule, prog string) string {
	field := "path"
	if op == "connect" || op == "bind" {
		field = "addr"
	}
	return `{"ts":"2026-11-27T10:00:00.5Z","pid":3,"program":"` + prog + `","op":"` + op + `","` + field + `":"` + subj +
		`","action":"` + action + `","rule":"` + rule + `","mode":"audit","policy":"p"}` + "\n"
}

func TestEventsTailFile(t *testing.T) {
	events.PollInterval = 20 * time.Millisecond
	f := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(f, []byte(line("read", "/old", "deny", "r", "/usr/bin/cat")), 0o644)
	out, errb, done := runAsync("events", "tail", f, "--action", "deny", "--program", "cat", "--count", "2")
	time.Sleep(150 * time.Millisecond)
	w, _ := os.OpenFile(f, os.O_APPEND|os.O_WRONLY, 0)
	w.WriteString(line("read", "/a", "allow", "", "/usr/bin/cat") + "noise\n" + line("read", "/b", "deny", "no-b", "/usr/bin/cat") +
		line("read", "/c", "deny", "no-c", "/usr/bin/head") + line("write", "/d", "deny", "no-d", "/usr/bin/cat"))
	w.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop after --count 2")
	}
	want := "00:00.500000 DENY (audit: would deny) pid 3 /usr/bin/cat read /b  rule no-b\n" +
		"10:00:00.500000 DENY (audit: would deny) pid 3 /usr/bin/cat write /d  rule no-d\n"
	if got := out.String(); !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 2 {
		t.Errorf("tail printed:\n%s\nwant:\n%s", got, want)
	}
}

func TestEventsTailUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "events.sock")
	out, errb, done := runAsync("events", "tail", "--json", "--op", "connect", "--for", "20s", "--count", "1", "unix:"+sock)
	var conn *net.UnixConn
	for i := 0; i < 200; i++ {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err == nil {
			conn = c
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if conn == nil {
		t.Fatalf("the socket never appeared: %s", errb.String())
	}
	conn.Write([]byte(line("read", "/x", "allow", "", "/p")))
	conn.Write([]byte(line("connect", "10.0.0.1:443", "deny", "no-egress", "/usr/bin/curl")))
	conn.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop")
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(out.String()), &e); err != nil {
		t.Fatalf("output is not one JSON event: %v\n%s", err, out.String())
	}
	if e["addr"] != "10.0.0.1:443" || e["rule"] != "no-egress" || e["ts"] != "2026-11-27T10:00:00.5Z" {
		t.Errorf("event = %v", e)
	}
	if !strings.Contains(errb.String(), "listening for events on unix:"+sock) {
		t.Errorf("stderr: %s", errb.String())
	}
}

func TestEventsTailStdin(t *testing.T) {
	stdin = strings.NewReader("2026-11-27T10:00:00Z app started\n" + line("exec", "/bin/sh", "deny", "no-shells", "/usr/bin/python3") +
		line("read", "/a", "allow", "", "/p") + line("exec", "/bin/bash", "deny", "no-shells", "/usr/bin/python3"))
	defer func() { stdin = os.Stdin }()
	code, out, errs := crs(t, "events", "tail", "--rule", "no-shells", "--count", "1", "-")
	if code != 0 || out != "10:00:00.500000 DENY (audit: would deny) pid 3 /usr/bin/python3 exec /bin/sh  rule no-shells\n" {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}

func TestEventsTailUsage(t *testing.T) {
	for _, args := range [][]string{
		{"events", "tail"},
		{"events", "tail", "a", "b"},
		{"events", "tail", "--action", "block", "f"},
		{"events", "tail", "--op", "open", "f"},
		{"events", "tail", "unix:"},
		{"events"},
		{"events", "frobnicate"},
	} {
		if code, out, errs := crs(t, args...); code != exitcode.Usage {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, code, out, errs)
		}
	}
	if code, _, errs := crs(t, "events", "tail", "/nonexistent/x.log", "--for", "1s"); code != exitcode.Operational ||
		!strings.Contains(errs, "following events file /nonexistent/x.log") {
		t.Errorf("missing file: exit %d: %s", code, errs)
	}
}

// suggestApp runs `crs-ci policy suggest ARGS`. Until the policy command mounts suggestCommand() itself,
// the test mounts it the same way: as a subcommand of policy.
func suggestApp(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp(&out, &errb)
	for _, c := range app.Commands {
		if c.Name == "policy" && findCommand(c.Subcommands, "suggest") == nil {
			c.Subcommands = append(c.Subcommands, suggestCommand())
		}
	}
	err := app.Run(permuteArgs(app, append([]string{"crs-ci", "policy", "suggest"}, args...)))
	if err != nil {
		errb.WriteString("crs-ci: " + err.Error() + "\n")
	}
	return exitcode.Of(err), out.String(), errb.String()
}
