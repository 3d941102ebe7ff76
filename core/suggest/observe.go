// Package suggest is crs-ci's behavioural learning: it turns the events the probe wrote during an
// audit run into a crs-ci/v1 runtime policy that allows what was observed and denies the rest where the
// observed behaviour was narrow enough (paths grouped into directory globs, addresses into CIDRs, with
// readable rule names and event counts), or, starting from an existing policy, proposes only the rules
// that are missing, as a unified diff a reviewer can read in a pull request.
package suggest

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/crs-ci/crs-ci/core/events"
	"github.com/crs-ci/crs-ci/core/policy"
)

// kind is what a subject was observed doing.
type kind uint8

const (
	kRead  kind = iota // file, read access
	kWrite             // file, write access (write, unlink, rename, link, mkdir, chmod)
	kExec              // program executed
	kOut               // network, outbound (connect, sendto/sendmsg)
	kIn                // network, inbound (bind, listen, accept)
	kSys               // syscall() by number
)

// key is one distinct observation: what, on which subject, by which program.
type key struct {
	k       kind
	subject string // path; netip.AddrPort string or "unix:PATH"; syscall name
	program string
}

type obs struct {
	count    int64
	deniedBy string // a rule of the recording policy that denied it (audit mode), "" if none
}

// MaxKeys bounds the distinct observations kept (about 200 bytes each).
const MaxKeys = 1 << 20

// Observed is what a set of event streams showed a workload doing.
type Observed struct {
	Arch string // syscall numbering of the events: amd64 (default) or arm64

	m         map[key]*obs
	Events    int64 // events used
	Ignored   int64 // events of unknown ops or without a subject
	Errors    int64 // probe error events
	Dropped   int64 // events the probe reported it lost
	Unnamed   map[string]int64
	Abstract  map[string]int64 // abstract unix sockets (@name) by program: no path rule can match them
	Input     events.Stats
	tooMany   bool
	unnamedNr []string
}

// NewObserved returns an empty observation set for events of an architecture ("" = amd64).
func NewObserved(arch string) *Observed {
	if arch == "" {
		arch = "amd64"
	}
	return &Observed{Arch: arch, m: map[key]*obs{}, Unnamed: map[string]int64{}, Abstract: map[string]int64{}}
}

// Len is the number of distinct observations.
func (o *Observed) Len() int { return len(o.m) }

// Add records one event.
func (o *Observed) Add(e *events.Event) error {
	o.Dropped += e.Dropped
	if e.Action == events.ErrorAction {
		o.Errors++
		return nil
	}
	var keys []key
	switch e.Op {
	case "read":
		keys = append(keys, key{kRead, e.Path, e.Program})
	case "write", "unlink", "rename", "link", "mkdir", "chmod":
		keys = append(keys, key{kWrite, e.Path, e.Program})
		if e.Path2 != "" {
			keys = append(keys, key{kWrite, e.Path2, e.Program})
		}
	case "exec":
		keys = append(keys, key{kExec, e.Path, e.Program})
	case "connect", "bind":
		k := kOut
		if e.Op == "bind" {
			k = kIn
		}
		subj, ok := normAddr(e.Addr)
		if !ok {
			o.Ignored++
			return nil
		}
		keys = append(keys, key{k, subj, e.Program})
	case "syscall":
		name, ok := o.syscallName(e.Syscall)
		if !ok {
			o.Unnamed[e.Syscall]++
			o.Ignored++
			return nil
		}
		keys = append(keys, key{kSys, name, e.Program})
	default:
		o.Ignored++
		return nil
	}
	for _, k := range keys {
		if k.subject == "" {
			o.Ignored++
			return nil
		}
	}
	o.Events++
	for _, k := range keys {
		ob := o.m[k]
		if ob == nil {
			if len(o.m) >= MaxKeys {
				return fmt.Errorf("more than %d distinct observations: summarise a shorter or narrower run", MaxKeys)
			}
			ob = &obs{}
			o.m[k] = ob
		}
		ob.count++
		if e.Action == events.Deny && ob.deniedBy == "" {
			ob.deniedBy = e.Rule
			if ob.deniedBy == "" {
				ob.deniedBy = events.DefaultRule
			}
		}
	}
	return nil
}

// syscallName maps the probe's syscall field (a number in the probe's architecture, or a name) to a name.
func (o *Observed) syscallName(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	nr, err := strconv.Atoi(s)
	if err != nil {
		_, ok := policy.SyscallNumber(s, o.Arch)
		return s, ok
	}
	return policy.SyscallName(nr, o.Arch)
}

// normAddr returns the canonical form of an event address: "unix:PATH" as is, an IP address and port
// as netip.AddrPort prints it (IPv4-mapped IPv6 unmapped).
func normAddr(a string) (string, bool) {
	if strings.HasPrefix(a, "unix:") {
		return a, len(a) > len("unix:")
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return "", false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), true
}

// request builds the probe's request for an observation, to replay it through a compiled policy.
func (o *Observed) request(k key) policy.Request {
	q := policy.Request{Program: k.program, Arch: o.Arch}
	switch k.k {
	case kRead:
		q.Category, q.Op, q.Path, q.Access = policy.File, "read", k.subject, policy.AccessRead
	case kWrite:
		q.Category, q.Op, q.Path, q.Access = policy.File, "write", k.subject, policy.AccessWrite
	case kExec:
		q.Category, q.Op, q.Path = policy.Exec, "exec", k.subject
	case kOut, kIn:
		q.Category, q.Op, q.Access = policy.Network, "connect", policy.Outbound
		if k.k == kIn {
			q.Op, q.Access = "bind", policy.Inbound
		}
		if p, ok := strings.CutPrefix(k.subject, "unix:"); ok {
			q.Unix, q.Path = true, p
		} else if ap, err := netip.ParseAddrPort(k.subject); err == nil {
			q.Addr, q.Port = ap.Addr(), ap.Port()
		}
	case kSys:
		nr, _ := policy.SyscallNumber(k.subject, o.Arch)
		q.Category, q.Op, q.Syscall = policy.Syscall, "syscall", uint32(nr)
	}
	return q
}

// Requests returns the probe's requests for an event (two for a rename or link with both paths), or
// none for an event that is not a decision (a probe error, an unknown op).
func Requests(e *events.Event, arch string) []policy.Request {
	o := NewObserved(arch)
	if o.Add(e) != nil {
		return nil
	}
	var out []policy.Request
	for k := range o.m {
		out = append(out, o.request(k))
	}
	return out
}

// expressible reports whether a path observed in an event can be written as an exact policy path: the
// probe normalises paths, but a stream can hold anything (a relative path, "//", invalid UTF-8 replaced
// by U+FFFD, ...).
func expressible(p string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "\x00\uFFFD") {
		return false
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// usable splits observations into those a policy can express and those it cannot (with why).
func (o *Observed) usable(keys []key, strict bool) (ok []key, skipped map[key]string) {
	skipped = map[key]string{}
	for _, k := range keys {
		subj := k.subject
		switch k.k {
		case kOut, kIn:
			p, isUnix := strings.CutPrefix(subj, "unix:")
			if !isUnix || strings.HasPrefix(p, "@") {
				subj = "/"
			} else {
				subj = p
			}
		case kSys:
			subj = "/"
		}
		switch {
		case !expressible(subj):
			skipped[k] = fmt.Sprintf("path %q is not absolute and normalised", k.subject)
		case strict && k.program != "" && !expressible(k.program):
			skipped[k] = fmt.Sprintf("program %q is not an absolute normalised path", k.program)
		default:
			ok = append(ok, k)
		}
	}
	return ok, skipped
}

// skippedNote summarises observations left out of a suggestion.
func skippedNote(skipped map[key]string) string {
	if len(skipped) == 0 {
		return ""
	}
	var ex string
	for _, why := range skipped {
		if ex == "" || why < ex {
			ex = why
		}
	}
	return fmt.Sprintf("%d observations cannot be written as policy paths and were left out (e.g. %s): calls on them stay denied where the default is deny", len(skipped), ex)
}
