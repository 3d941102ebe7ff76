// Package events reads the JSON-line events the crs-ci probe writes inside instrumented containers,
// summarises them (by action, rule, program, operation and path/address prefix, with what audit mode would
// have denied called out first) and follows a live stream from a growing file or a unix datagram sink.
//
// Input is read as a stream with bounded memory: lines that are not events (application output interleaved
// by `docker logs` or `kubectl logs`, with or without timestamp prefixes) are skipped and counted, truncated
// or broken lines are counted as malformed, and unknown fields from a newer probe are ignored.
package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Actions, as the probe writes them.
const (
	Allow = "allow"
	Deny  = "deny"
	Alert = "alert"
)

// Modes, as the probe writes them.
const (
	Enforce = "enforce"
	Audit   = "audit"
)

// Ops lists the operations of docs/compiled-policy.md, in bit order. A newer probe may write others;
// they are read and counted like these.
var Ops = []string{"read", "write", "unlink", "rename", "link", "mkdir", "chmod", "exec", "connect", "bind", "syscall"}

// DropsOp is the op of a stand-alone report of lost events. The probe reports drops in the `dropped`
// field of its next event instead; a line with this op is still read.
const DropsOp = "drops"

// ProbeOp and ErrorAction mark the probe's own error events (policy missing or corrupt, ...), with the
// reason in the error field.
const (
	ProbeOp     = "probe"
	ErrorAction = "error"
)

// Category returns the policy category of an op: file, exec, network, syscall, or "" for an unknown op.
func Category(op string) string {
	switch op {
	case "read", "write", "unlink", "rename", "link", "mkdir", "chmod":
		return "file"
	case "exec":
		return "exec"
	case "connect", "bind":
		return "network"
	case "syscall":
		return "syscall"
	}
	return ""
}

// Event is one line the probe wrote. Fields a newer probe adds are ignored.
type Event struct {
	TS      time.Time `json:"ts"`
	PID     int       `json:"pid"`
	Program string    `json:"program"`
	Op      string    `json:"op"`
	Path    string    `json:"path,omitempty"`
	Path2   string    `json:"path2,omitempty"` // the second path of rename/link, when the probe writes it
	Addr    string    `json:"addr,omitempty"`  // IP:PORT, [IPv6]:PORT or unix:PATH
	Syscall string    `json:"syscall,omitempty"`
	Action  string    `json:"action"`
	Rule    string    `json:"rule"`
	Mode    string    `json:"mode"`
	Policy  string    `json:"policy"`
	// Dropped is how many events this process could not write before this one (the probe reports its
	// drops on the next event it writes).
	Dropped   int64  `json:"dropped,omitempty"`
	Error     string `json:"error,omitempty"`     // for op "probe", action "error": what went wrong in the probe
	Truncated bool   `json:"truncated,omitempty"` // the probe cut a string field to fit its line buffer
}

// Subject is what the event is about: the address, the path or the syscall.
func (e *Event) Subject() string {
	switch {
	case e.Addr != "":
		return e.Addr
	case e.Path != "":
		return e.Path
	case e.Syscall != "":
		return e.Syscall
	}
	return ""
}

// WouldDeny reports whether the event is a denial that audit mode let through.
func (e *Event) WouldDeny() bool { return e.Action == Deny && e.Mode == Audit }

// wire is the tolerant shape of a line: numbers may arrive as strings and syscalls as numbers.
type wire struct {
	TS      string          `json:"ts"`
	PID     json.RawMessage `json:"pid"`
	Program string          `json:"program"`
	Op      string          `json:"op"`
	Path    string          `json:"path"`
	Path2   string          `json:"path2"`
	NewPath string          `json:"newpath"`
	Addr    string          `json:"addr"`
	Syscall json.RawMessage `json:"syscall"`
	Nr      json.RawMessage `json:"nr"`
	Action  string          `json:"action"`
	Rule    string          `json:"rule"`
	Mode    string          `json:"mode"`
	Policy  string          `json:"policy"`
	Dropped json.RawMessage `json:"dropped"`
	Error   string          `json:"error"`
	Trunc   bool            `json:"truncated"`
}

func rawNumberOrString(r json.RawMessage) string {
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String()
	}
	return ""
}

// Parse decodes one line. It finds the JSON object in the line (after any log prefix such as a
// `kubectl logs --timestamps` timestamp) and returns ErrNotEvent when the line holds none, or an error
// describing why an object that looks like an event could not be read.
func Parse(line []byte) (Event, error) {
	i := bytes.Index(line, []byte(`{"`))
	if i < 0 {
		return Event{}, ErrNotEvent
	}
	obj := bytes.TrimRight(line[i:], " \t\r\n")
	var w wire
	if err := json.Unmarshal(obj, &w); err != nil {
		if looksLikeEvent(obj) {
			return Event{}, fmt.Errorf("malformed event: %w", err)
		}
		return Event{}, ErrNotEvent
	}
	if w.Op == "" || (w.Action == "" && w.Op != DropsOp) {
		return Event{}, ErrNotEvent
	}
	e := Event{Program: w.Program, Op: w.Op, Path: w.Path, Path2: w.Path2, Addr: w.Addr,
		Action: w.Action, Rule: w.Rule, Mode: w.Mode, Policy: w.Policy, Error: w.Error, Truncated: w.Trunc}
	if e.Path2 == "" {
		e.Path2 = w.NewPath
	}
	e.Syscall = rawNumberOrString(w.Syscall)
	if e.Syscall == "" {
		e.Syscall = rawNumberOrString(w.Nr)
	}
	if s := rawNumberOrString(w.PID); s != "" {
		pid, err := strconv.Atoi(s)
		if err != nil {
			return Event{}, fmt.Errorf("malformed event: pid %q is not a number", s)
		}
		e.PID = pid
	}
	if s := rawNumberOrString(w.Dropped); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Event{}, fmt.Errorf("malformed event: dropped %q is not a number", s)
		}
		e.Dropped = n
	}
	if w.TS != "" {
		t, err := time.Parse(time.RFC3339Nano, w.TS)
		if err != nil {
			return Event{}, fmt.Errorf("malformed event: ts %q is not RFC 3339", w.TS)
		}
		e.TS = t
	}
	return e, nil
}

// looksLikeEvent tells a broken event (a truncated line) from some other program's JSON.
func looksLikeEvent(obj []byte) bool {
	return bytes.Contains(obj, []byte(`"op":`)) || bytes.Contains(obj, []byte(`"policy":`)) ||
		bytes.Contains(obj, []byte(`"action":`))
}

// ErrNotEvent is returned by Parse for a line that holds no probe event.
var ErrNotEvent = errors.New("not an event")

// MaxLine is the longest line read as a possible event; longer lines are skipped and counted. The probe's
// lines are bounded by PATH_MAX-sized paths, far below it.
const MaxLine = 64 << 10

// Stats counts what a Reader saw.
type Stats struct {
	Lines     int64 `json:"lines"`
	Events    int64 `json:"events"`
	Skipped   int64 `json:"skipped"`   // lines that hold no event (application output, blank lines)
	Malformed int64 `json:"malformed"` // lines that looked like an event but could not be read (truncated, bad values)
	Oversized int64 `json:"oversized"` // lines longer than MaxLine, skipped
	// FirstMalformed locates the first malformed line, e.g. "events.log:12: malformed event: unexpected end of JSON input".
	FirstMalformed string `json:"firstMalformed,omitempty"`
}

// Add adds o's counts to s.
func (s *Stats) Add(o Stats) {
	s.Lines += o.Lines
	s.Events += o.Events
	s.Skipped += o.Skipped
	s.Malformed += o.Malformed
	s.Oversized += o.Oversized
	if s.FirstMalformed == "" {
		s.FirstMalformed = o.FirstMalformed
	}
}

// Reader reads events from a stream, one line at a time, in bounded memory.
type Reader struct {
	name  string
	br    *bufio.Reader
	stats Stats
	buf   []byte
}

// NewReader reads events from r; name (a file name, or "-" for stdin) is used in messages.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{name: name, br: bufio.NewReaderSize(r, 64<<10)}
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats { return r.stats }

// Next returns the next event, or io.EOF at the end of the stream. Non-event and malformed lines are
// counted and skipped; any other error is a read error of the underlying stream.
func (r *Reader) Next() (Event, error) {
	for {
		line, tooLong, err := r.readLine()
		if len(line) == 0 && !tooLong && err != nil {
			if err == io.EOF {
				return Event{}, io.EOF
			}
			return Event{}, fmt.Errorf("reading events from %s after line %d: %w", r.name, r.stats.Lines, err)
		}
		r.stats.Lines++
		if tooLong {
			r.stats.Oversized++
			continue
		}
		ev, perr := Parse(line)
		switch {
		case perr == nil:
			r.stats.Events++
			return ev, nil
		case errors.Is(perr, ErrNotEvent):
			r.stats.Skipped++
		default:
			r.stats.Malformed++
			if r.stats.FirstMalformed == "" {
				r.stats.FirstMalformed = fmt.Sprintf("%s:%d: %v", r.name, r.stats.Lines, perr)
			}
		}
	}
}

// readLine returns the next line without its newline. A line longer than MaxLine is consumed up to its
// newline and reported as tooLong with no bytes. At the end of the stream a last line without a newline
// is returned with a nil error, then io.EOF.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(r.buf)+len(chunk) > MaxLine+1 {
				tooLong = true
				r.buf = r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(r.buf) > 0 || tooLong {
				return r.buf, tooLong, nil
			}
			return nil, false, io.EOF
		case err != nil:
			return r.buf, tooLong, err
		}
		return bytes.TrimSuffix(r.buf, []byte("\n")), tooLong, nil
	}
}

// ReadAll calls fn for every event of r and returns the reader's counts. An error from fn stops the read
// and is returned.
func ReadAll(rd io.Reader, name string, fn func(*Event) error) (Stats, error) {
	r := NewReader(rd, name)
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return r.Stats(), nil
		}
		if err != nil {
			return r.Stats(), err
		}
		if err := fn(&ev); err != nil {
			return r.Stats(), err
		}
	}
}
