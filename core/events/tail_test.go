package events

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func ev(op, subj, action, mode, rule, program string) string {
	field := "path"
	if op == "connect" || op == "bind" {
		field = "addr"
	}
	return `{"ts":"2026-11-27T10:00:00.000001Z","pid":7,"program":"` + program + `","op":"` + op + `","` + field + `":"` + subj +
		`","action":"` + action + `","rule":"` + rule + `","mode":"` + mode + `","policy":"p"}`
}

func TestFilter(t *testing.T) {
	e := func(line string) *Event {
		x, err := Parse([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		return &x
	}
	shadow := e(ev("read", "/etc/shadow", "deny", "audit", "no-secrets", "/usr/bin/cat"))
	conn := e(ev("connect", "10.0.0.1:443", "allow", "enforce", "", "/usr/bin/curl"))
	tests := []struct {
		name string
		f    Filter
		want []bool // shadow, conn
	}{
		{"empty", Filter{}, []bool{true, true}},
		{"action deny", Filter{Actions: []string{"deny"}}, []bool{true, false}},
		{"would-deny", Filter{Actions: []string{"would-deny"}}, []bool{true, false}},
		{"op connect or bind", Filter{Ops: []string{"connect", "bind"}}, []bool{false, true}},
		{"program base name", Filter{Programs: []string{"curl"}}, []bool{false, true}},
		{"program glob", Filter{Programs: []string{"/usr/bin/c*"}}, []bool{true, true}},
		{"rule default", Filter{Rules: []string{"default"}}, []bool{false, true}},
		{"rule named", Filter{Rules: []string{"no-secrets"}}, []bool{true, false}},
		{"and across fields", Filter{Actions: []string{"deny"}, Programs: []string{"curl"}}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := []bool{tt.f.Match(shadow), tt.f.Match(conn)}; got[0] != tt.want[0] || got[1] != tt.want[1] {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []Filter{{Actions: []string{"block"}}, {Ops: []string{"open"}}, {Programs: []string{"[x"}}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestPretty(t *testing.T) {
	tests := []struct{ line, want string }{
		{ev("read", "/etc/shadow", "deny", "audit", "no-secrets", "/usr/bin/cat"),
			"10:00:00.000001 DENY (audit: would deny) pid 7 /usr/bin/cat read /etc/shadow  rule no-secrets\n"},
		{ev("connect", "10.0.0.1:443", "allow", "enforce", "", "/usr/bin/curl"),
			"10:00:00.000001 ALLOW pid 7 /usr/bin/curl connect 10.0.0.1:443  rule (default)\n"},
		{`{"pid":7,"program":"/bin/mv","op":"rename","path":"/a","path2":"/b","action":"deny","rule":"r","mode":"enforce","policy":"p"}`,
			"- DENY pid 7 /bin/mv rename /a -> /b  rule r\n"},
		{`{"ts":"2026-11-27T10:00:00Z","pid":7,"program":"/p","op":"drops","dropped":3}`,
			"10:00:00.000000 DROPS pid 7: the probe lost 3 events\n"},
	}
	for _, tt := range tests {
		e, err := Parse([]byte(tt.line))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		Pretty(&b, &e)
		if b.String() != tt.want {
			t.Errorf("Pretty = %q, want %q", b.String(), tt.want)
		}
	}
}

// collector gathers events from a goroutine and lets the test wait for a count.
type collector struct {
	mu  sync.Mutex
	got []string
}

func (c *collector) add(e *Event) error {
	c.mu.Lock()
	c.got = append(c.got, e.Op+" "+e.Subject())
	c.mu.Unlock()
	return nil
}

func (c *collector) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.got) >= n {
			out := append([]string(nil), c.got...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("waited for %d events, got %q", n, c.got)
	return nil
}

func TestFollow(t *testing.T) {
	PollInterval = 20 * time.Millisecond
	name := filepath.Join(t.TempDir(), "events.log")
	if err := os.WriteFile(name, []byte(ev("read", "/old", "allow", "audit", "", "/p")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{}
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, name, false, c.add) }()
	time.Sleep(100 * time.Millisecond) // let Follow seek to the end: /old must not be reported

	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := ev("read", "/new1", "allow", "audit", "", "/p") + "\n"
	// A line written in two parts is read once, whole.
	f.WriteString(line[:20])
	time.Sleep(60 * time.Millisecond)
	f.WriteString(line[20:] + "application noise\n" + ev("write", "/new2", "deny", "audit", "r", "/p") + "\n")
	f.Close()
	if got := c.waitFor(t, 2); strings.Join(got, "|") != "read /new1|write /new2" {
		t.Fatalf("after appends: %q", got)
	}
	// Truncation (copytruncate rotation): reading starts over.
	if err := os.WriteFile(name, []byte(ev("unlink", "/after-truncate", "allow", "audit", "", "/p")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, 3)
	// Replacement (rename rotation): the new file is followed from its start.
	tmp := name + ".new"
	os.WriteFile(tmp, []byte(ev("mkdir", "/after-rotate", "allow", "audit", "", "/p")+"\n"), 0o644)
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
	got := c.waitFor(t, 4)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "read /new1|write /new2|unlink /after-truncate|mkdir /after-rotate"
	if strings.Join(got, "|") != want {
		t.Errorf("followed %q, want %q", got, want)
	}
}

func TestFollowMissingFile(t *testing.T) {
	err := Follow(context.Background(), "/nonexistent/events.log", true, func(*Event) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "following events file /nonexistent/events.log") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnixSink(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "events.sock")
	// A stale socket from an earlier run is replaced.
	stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close()
	sink, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{}
	done := make(chan error, 1)
	go func() { done <- sink.Serve(ctx, c.add) }()

	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{
		ev("exec", "/bin/sh", "deny", "enforce", "no-shells", "/usr/bin/python3") + "\n",
		"not json",
		ev("connect", "10.0.0.9:25", "deny", "audit", "no-mail", "/usr/bin/curl"), // no newline
		ev("read", "/a", "allow", "audit", "", "/p") + "\n" + ev("read", "/b", "allow", "audit", "", "/p") + "\n",
	} {
		if _, err := conn.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	got := c.waitFor(t, 4)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "exec /bin/sh|connect 10.0.0.9:25|read /a|read /b"; strings.Join(got, "|") != want {
		t.Errorf("received %q, want %q", got, want)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

func TestUnixSinkRefusesRegularFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "events.sock")
	os.WriteFile(p, []byte("precious"), 0o644)
	if _, err := ListenUnix(p); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "precious" {
		t.Error("the regular file was touched")
	}
}
