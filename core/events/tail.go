package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// Filter selects events for tail. An empty list selects everything; a Programs entry is a glob
// (path.Match) against the program, or its base name ("curl" selects /usr/bin/curl).
type Filter struct {
	Actions  []string
	Ops      []string
	Programs []string
	Rules    []string // DefaultRule ("(default)") or "default" selects events decided by a category default
}

// Validate checks the filter's values and patterns.
func (f Filter) Validate() error {
	for _, a := range f.Actions {
		if a != Allow && a != Deny && a != Alert && a != "would-deny" {
			return fmt.Errorf("--action %q: want allow, deny, alert or would-deny", a)
		}
	}
	for _, o := range f.Ops {
		if Category(o) == "" && o != DropsOp {
			return fmt.Errorf("--op %q: want one of %s", o, strings.Join(Ops, ", "))
		}
	}
	for _, p := range f.Programs {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("--program %q: bad pattern: %v", p, err)
		}
	}
	return nil
}

// Match reports whether e passes the filter.
func (f Filter) Match(e *Event) bool {
	if len(f.Actions) > 0 && !anyOf(f.Actions, func(a string) bool {
		if a == "would-deny" {
			return e.WouldDeny()
		}
		return a == e.Action
	}) {
		return false
	}
	if len(f.Ops) > 0 && !anyOf(f.Ops, func(o string) bool { return o == e.Op }) {
		return false
	}
	if len(f.Programs) > 0 && !anyOf(f.Programs, func(p string) bool {
		if ok, _ := path.Match(p, e.Program); ok {
			return true
		}
		ok, _ := path.Match(p, path.Base(e.Program))
		return ok
	}) {
		return false
	}
	if len(f.Rules) > 0 && !anyOf(f.Rules, func(r string) bool {
		if e.Rule == "" {
			return r == DefaultRule || r == "default" || r == ""
		}
		return r == e.Rule
	}) {
		return false
	}
	return true
}

func anyOf(list []string, fn func(string) bool) bool {
	for _, s := range list {
		if fn(s) {
			return true
		}
	}
	return false
}

// Pretty writes one event as a human-readable line:
//
//	13:22:15.123456 DENY (audit) pid 42 /usr/bin/cat read /etc/shadow  rule no-secrets
func Pretty(w io.Writer, e *Event) error {
	ts := "-"
	if !e.TS.IsZero() {
		ts = e.TS.UTC().Format("15:04:05.000000")
	}
	if e.Op == DropsOp {
		_, err := fmt.Fprintf(w, "%s DROPS pid %d: the probe lost %d events\n", ts, e.PID, e.Dropped)
		return err
	}
	act := strings.ToUpper(e.Action)
	if e.Mode == Audit && e.Action == Deny {
		act = "DENY (audit: would deny)"
	}
	subj := e.Subject()
	if e.Path2 != "" {
		subj += " -> " + e.Path2
	}
	rule := e.Rule
	if rule == "" {
		rule = DefaultRule
	}
	_, err := fmt.Fprintf(w, "%s %s pid %d %s %s %s  rule %s\n", ts, act, e.PID, e.Program, e.Op, subj, rule)
	return err
}

// PollInterval is how often Follow checks a file for new data.
var PollInterval = 200 * time.Millisecond

// Follow reads events appended to the file at name until ctx ends, calling fn for each. It starts at the end
// of the file unless fromStart, waits for lines to be complete before reading them, and starts over when the
// file is truncated or replaced (log rotation). It returns nil when ctx ends.
func Follow(ctx context.Context, name string, fromStart bool, fn func(*Event) error) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("following events file %s: %w", name, err)
	}
	defer func() { f.Close() }()
	var off int64
	if !fromStart {
		if off, err = f.Seek(0, io.SeekEnd); err != nil {
			return fmt.Errorf("following events file %s: %w", name, err)
		}
	}
	var pending []byte
	buf := make([]byte, 64<<10)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			off += int64(n)
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				line := pending[:i]
				if len(line) <= MaxLine {
					if ev, perr := Parse(line); perr == nil {
						if err := fn(&ev); err != nil {
							return err
						}
					}
				}
				pending = pending[i+1:]
			}
			if len(pending) > MaxLine { // a runaway line: drop what we have of it
				pending = pending[:0]
			}
			pending = append([]byte(nil), pending...)
			continue
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("following events file %s: %w", name, rerr)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(PollInterval):
		}
		// Truncated in place, or replaced by a new file (rotation)?
		cur, serr := os.Stat(name)
		old, ferr := f.Stat()
		if serr != nil || ferr != nil {
			continue // rotated away and not yet recreated: keep waiting
		}
		if !os.SameFile(cur, old) {
			nf, err := os.Open(name)
			if err != nil {
				continue
			}
			f.Close()
			f, off, pending = nf, 0, pending[:0]
		} else if cur.Size() < off {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("following events file %s after truncation: %w", name, err)
			}
			off, pending = 0, pending[:0]
		}
	}
}

// UnixSink is a bound `unix:` datagram socket the probe sends events to.
type UnixSink struct {
	Path string
	conn *net.UnixConn
}

// ListenUnix binds a datagram socket at p (removing a stale socket left by an earlier run, never any
// other kind of file) so that probes configured with `unix:p` can send to it.
func ListenUnix(p string) (*UnixSink, error) {
	if fi, err := os.Lstat(p); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("binding event socket %s: a file that is not a socket is in the way", p)
		}
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("binding event socket %s: removing stale socket: %w", p, err)
		}
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("binding event socket %s: %w", p, err)
	}
	// Probes in containers may run as any user: let them send.
	_ = os.Chmod(p, 0o666)
	return &UnixSink{Path: p, conn: conn}, nil
}

// Serve reads datagrams until ctx ends, calling fn for each event (a datagram may hold several lines).
// It closes and removes the socket before returning; it returns nil when ctx ends.
func (s *UnixSink) Serve(ctx context.Context, fn func(*Event) error) error {
	defer os.Remove(s.Path)
	defer s.conn.Close()
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, MaxLine+1)
	for {
		n, _, err := s.conn.ReadFromUnix(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return fmt.Errorf("reading event socket %s: %w", s.Path, err)
		}
		for _, line := range bytes.Split(buf[:n], []byte("\n")) {
			if ev, perr := Parse(line); perr == nil {
				if err := fn(&ev); err != nil {
					return err
				}
			}
		}
	}
}

// Close closes the socket and removes its file.
func (s *UnixSink) Close() error {
	err := s.conn.Close()
	os.Remove(s.Path)
	return err
}
