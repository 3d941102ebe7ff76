package events

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

const testPolicy = "3f2a9c1e5b7d40a6c8e2f1b3d5a7c9e0f2b4d6a8c0e2f4a6b8d0c2e4f6a8b0c2"

func TestParse(t *testing.T) {
	ts := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name    string
		line    string
		want    Event
		wantErr string // "" ok, "not" ErrNotEvent, else substring of a malformed error
	}{
		{name: "plain", line: `{"ts":"2026-11-27T10:00:00.123456789Z","pid":42,"program":"/usr/bin/cat","op":"read","path":"/etc/shadow","action":"deny","rule":"no-secrets","mode":"audit","policy":"abc"}`,
			want: Event{TS: ts, PID: 42, Program: "/usr/bin/cat", Op: "read", Path: "/etc/shadow", Action: "deny", Rule: "no-secrets", Mode: "audit", Policy: "abc"}},
		{name: "kubectl timestamp prefix", line: `2026-11-27T10:00:00.5Z {"ts":"2026-11-27T10:00:00.123456789Z","pid":1,"program":"/bin/sh","op":"exec","path":"/bin/ls","action":"allow","rule":"","mode":"enforce","policy":"p"}`,
			want: Event{TS: ts, PID: 1, Program: "/bin/sh", Op: "exec", Path: "/bin/ls", Action: "allow", Mode: "enforce", Policy: "p"}},
		{name: "compose prefix and CRLF", line: "web-1  | {\"pid\":3,\"program\":\"/p\",\"op\":\"connect\",\"addr\":\"[::1]:80\",\"action\":\"alert\",\"rule\":\"r\",\"mode\":\"enforce\",\"policy\":\"p\"}\r",
			want: Event{PID: 3, Program: "/p", Op: "connect", Addr: "[::1]:80", Action: "alert", Rule: "r", Mode: "enforce", Policy: "p"}},
		{name: "unknown fields of a newer probe", line: `{"pid":3,"program":"/p","op":"read","path":"/a","action":"allow","rule":"","mode":"audit","policy":"p","container":{"id":"x"},"seq":9,"tags":[1,"a"]}`,
			want: Event{PID: 3, Program: "/p", Op: "read", Path: "/a", Action: "allow", Mode: "audit", Policy: "p"}},
		{name: "pid as string, syscall as number", line: `{"pid":"12","program":"/p","op":"syscall","syscall":101,"action":"deny","rule":"no-ptrace","mode":"enforce","policy":"p"}`,
			want: Event{PID: 12, Program: "/p", Op: "syscall", Syscall: "101", Action: "deny", Rule: "no-ptrace", Mode: "enforce", Policy: "p"}},
		{name: "rename with two paths", line: `{"pid":1,"program":"/bin/mv","op":"rename","path":"/a","path2":"/b","action":"allow","rule":"","mode":"audit","policy":"p"}`,
			want: Event{PID: 1, Program: "/bin/mv", Op: "rename", Path: "/a", Path2: "/b", Action: "allow", Mode: "audit", Policy: "p"}},
		{name: "drops report", line: `{"ts":"2026-11-27T10:00:00.123456789Z","pid":5,"program":"/p","op":"drops","dropped":17,"policy":"p"}`,
			want: Event{TS: ts, PID: 5, Program: "/p", Op: "drops", Dropped: 17, Policy: "p"}},
		{name: "application text", line: "Starting gunicorn 21.2.0", wantErr: "not"},
		{name: "blank", line: "", wantErr: "not"},
		{name: "application JSON", line: `{"level":"info","msg":"listening"}`, wantErr: "not"},
		{name: "application JSON that is broken", line: `{"level":"info","msg":"listen`, wantErr: "not"},
		{name: "truncated event", line: `{"ts":"2026-11-27T10:00:00Z","pid":9,"program":"/p","op":"conn`, wantErr: "unexpected end of JSON input"},
		{name: "bad timestamp", line: `{"ts":"yesterday","pid":9,"program":"/p","op":"read","path":"/a","action":"allow"}`, wantErr: `ts "yesterday" is not RFC 3339`},
		{name: "bad pid", line: `{"pid":"nine","program":"/p","op":"read","path":"/a","action":"allow"}`, wantErr: `pid "nine" is not a number`},
		{name: "event without action", line: `{"pid":1,"program":"/p","op":"read","path":"/a"}`, wantErr: "not"},
		{name: "wrong type", line: `{"pid":1,"program":["x"],"op":"read","path":"/a","action":"allow"}`, wantErr: "malformed event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.line))
			switch {
			case tt.wantErr == "not":
				if !errors.Is(err, ErrNotEvent) {
					t.Fatalf("Parse = %+v, %v; want ErrNotEvent", got, err)
				}
			case tt.wantErr != "":
				if err == nil || errors.Is(err, ErrNotEvent) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v; want a malformed-event error containing %q", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got != tt.want {
					t.Fatalf("Parse =\n %+v\nwant\n %+v", got, tt.want)
				}
			}
		})
	}
}

func TestReaderInterleaved(t *testing.T) {
	f, err := os.Open("testdata/interleaved.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	st, err := ReadAll(f, "interleaved.log", func(e *Event) error {
		got = append(got, e.Op+" "+e.Subject())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"read /app/main.py", "bind 0.0.0.0:8000", "read /etc/shadow", "read /app/util.py", "probe /etc/crs-ci/policy.bin", "connect 10.9.8.7:6379"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events = %q, want %q", got, want)
	}
	wantSt := Stats{Lines: 13, Events: 6, Skipped: 4, Malformed: 3,
		FirstMalformed: `interleaved.log:7: malformed event: ts "yesterday" is not RFC 3339`}
	if st != wantSt {
		t.Errorf("stats = %+v\nwant    %+v", st, wantSt)
	}
}

func TestReaderLines(t *testing.T) {
	ev := `{"pid":1,"program":"/p","op":"read","path":"/a","action":"allow","rule":"","mode":"audit","policy":"p"}`
	long := `{"pid":1,"program":"/p","op":"read","path":"/` + strings.Repeat("x", MaxLine) + `","action":"allow"}`
	tests := []struct {
		name  string
		input string
		want  Stats
	}{
		{"empty", "", Stats{}},
		{"one without newline", ev, Stats{Lines: 1, Events: 1}},
		{"oversized line then an event", long + "\n" + ev + "\n", Stats{Lines: 2, Events: 1, Oversized: 1}},
		{"oversized last line without newline", ev + "\n" + long, Stats{Lines: 2, Events: 1, Oversized: 1}},
		{"line of exactly MaxLine", ev + "\n" + strings.Repeat("y", MaxLine) + "\n" + ev, Stats{Lines: 3, Events: 2, Skipped: 1}},
		{"NUL bytes and blank lines", "\x00\x00\n\n" + ev + "\n\n", Stats{Lines: 4, Events: 1, Skipped: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A tiny-chunk reader makes the line assembly cross buffer boundaries.
			st, err := ReadAll(io.LimitReader(&slowReader{s: tt.input}, 1<<30), "in", func(*Event) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if st != tt.want {
				t.Errorf("stats = %+v, want %+v", st, tt.want)
			}
		})
	}
}

// slowReader returns at most 7 bytes per Read.
type slowReader struct {
	s string
	i int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.i >= len(r.s) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 7)], r.s[r.i:])
	r.i += n
	return n, nil
}

type failingReader struct{ after string }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.after != "" {
		n := copy(p, r.after)
		r.after = r.after[n:]
		return n, nil
	}
	return 0, errors.New("input/output error")
}

func TestReaderIOError(t *testing.T) {
	ev := `{"pid":1,"program":"/p","op":"read","path":"/a","action":"allow","rule":"","mode":"audit","policy":"p"}` + "\n"
	n := 0
	_, err := ReadAll(&failingReader{after: ev}, "events.log", func(*Event) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "reading events from events.log after line 1: input/output error") {
		t.Fatalf("err = %v", err)
	}
	if n != 1 {
		t.Errorf("events before the error = %d, want 1", n)
	}
}

// genReader produces n events with n distinct paths and programs without holding them in memory.
type genReader struct {
	n, i int
	buf  bytes.Buffer
}

func (g *genReader) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && g.i < g.n {
		fmt.Fprintf(&g.buf, `{"ts":"2026-11-27T10:%02d:%02d.%09dZ","pid":%d,"program":"/opt/bin/p%d","op":"read","path":"/data/d%d/f%d","action":"%s","rule":"","mode":"audit","policy":"%s"}`+"\n",
			g.i/60%60, g.i%60, g.i, g.i, g.i, g.i%5000, g.i, []string{"allow", "deny"}[g.i%2], testPolicy)
		if g.i%10 == 0 {
			g.buf.WriteString("2026-11-27T10:00:00Z some application output\n")
		}
		g.i++
	}
	if g.buf.Len() == 0 {
		return 0, io.EOF
	}
	return g.buf.Read(p)
}

// TestHugeStreamBounded reads 200,000 events with as many distinct paths and programs and checks that the
// summary keeps at most its bounds of keys and groups, with every event counted exactly once.
func TestHugeStreamBounded(t *testing.T) {
	const n = 200000
	lim := Limits{Keys: 100, Groups: 50}
	s := NewSummary(lim)
	st, err := ReadAll(&genReader{n: n}, "gen", func(e *Event) error { s.Add(e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	s.AddStats(st)
	if st.Events != n || st.Skipped != n/10 {
		t.Fatalf("stats = %+v", st)
	}
	for name, c := range map[string]*Counter{"program": s.ByProgram, "prefix": s.ByPrefix, "rule": s.ByRule} {
		if c.Len() > lim.Keys {
			t.Errorf("%s counter holds %d keys, bound %d", name, c.Len(), lim.Keys)
		}
		var total int64
		for _, b := range c.Top(0) {
			total += b.Count
		}
		if total != n {
			t.Errorf("%s counter total %d, want %d", name, total, n)
		}
	}
	if s.ByProgram.Other.Count != n-int64(lim.Keys) {
		t.Errorf("program other = %d, want %d", s.ByProgram.Other.Count, n-lim.Keys)
	}
	if got := len(s.WouldDeny.List()); got != lim.Groups {
		t.Errorf("would-deny groups = %d, want the bound %d", got, lim.Groups)
	}
	if s.WouldDeny.Total != n/2 || s.WouldDeny.Other != n/2-int64(lim.Groups) {
		t.Errorf("would-deny total %d other %d", s.WouldDeny.Total, s.WouldDeny.Other)
	}
}

func BenchmarkReadEvents(b *testing.B) {
	var buf bytes.Buffer
	io.Copy(&buf, &genReader{n: 10000})
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s := NewSummary(DefaultLimits)
		if _, err := ReadAll(bytes.NewReader(data), "bench", func(e *Event) error { s.Add(e); return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
