package events

import (
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OtherKey is the key under which a bounded counter gathers the keys it had no room for.
const OtherKey = "(other)"

// Bucket counts the events of one key and when they were seen.
type Bucket struct {
	Key   string    `json:"key"`
	Count int64     `json:"count"`
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

func (b *Bucket) add(n int64, ts time.Time) {
	b.Count += n
	if ts.IsZero() {
		return
	}
	if b.First.IsZero() || ts.Before(b.First) {
		b.First = ts
	}
	if ts.After(b.Last) {
		b.Last = ts
	}
}

// Counter counts events by key with at most Max distinct keys: the first Max keys seen are counted
// exactly and every later new key is counted in the Other bucket, so memory stays bounded however many
// distinct paths or addresses a stream holds.
type Counter struct {
	Max   int
	m     map[string]*Bucket
	Other Bucket
}

// NewCounter returns a Counter with room for max keys.
func NewCounter(max int) *Counter { return &Counter{Max: max, m: map[string]*Bucket{}} }

// Add counts one event of key at ts.
func (c *Counter) Add(key string, ts time.Time) { c.AddN(key, 1, ts) }

// AddN counts n events of key at ts.
func (c *Counter) AddN(key string, n int64, ts time.Time) {
	b, ok := c.m[key]
	if !ok {
		if len(c.m) >= c.Max {
			c.Other.Key = OtherKey
			c.Other.add(n, ts)
			return
		}
		b = &Bucket{Key: key}
		c.m[key] = b
	}
	b.add(n, ts)
}

// Len is the number of distinct keys counted exactly.
func (c *Counter) Len() int { return len(c.m) }

// Top returns the n biggest buckets (all when n <= 0), biggest first, ties by key, followed by the Other
// bucket when it counted anything.
func (c *Counter) Top(n int) []Bucket {
	out := make([]Bucket, 0, len(c.m)+1)
	for _, b := range c.m {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if n > 0 && len(out) > n {
		rest := Bucket{Key: OtherKey}
		for _, b := range out[n:] {
			rest.add(b.Count, b.First)
			rest.add(0, b.Last)
		}
		out = out[:n]
		c.mergeOther(&rest)
		return append(out, rest)
	}
	if c.Other.Count > 0 {
		out = append(out, c.Other)
	}
	return out
}

func (c *Counter) mergeOther(b *Bucket) {
	if c.Other.Count > 0 {
		b.add(c.Other.Count, c.Other.First)
		b.add(0, c.Other.Last)
	}
}

// Group is one distinct kind of event: who did what to which subject, and what was decided.
type Group struct {
	Action  string    `json:"action"`
	Mode    string    `json:"mode"`
	Program string    `json:"program"`
	Op      string    `json:"op"`
	Subject string    `json:"subject"`
	Rule    string    `json:"rule"` // "" when the category default decided
	Count   int64     `json:"count"`
	First   time.Time `json:"first,omitzero"`
	Last    time.Time `json:"last,omitzero"`
}

// Limits bound the memory of a Summary.
type Limits struct {
	Keys   int // distinct keys per counter (rules, programs, ops, prefixes)
	Groups int // distinct denial groups kept
}

// DefaultLimits keep a summary of any stream within a few megabytes.
var DefaultLimits = Limits{Keys: 1000, Groups: 2000}

// Summary is what a stream of events amounts to. Build it with NewSummary and Add.
type Summary struct {
	Events    int64     `json:"events"`
	First     time.Time `json:"first,omitzero"`
	Last      time.Time `json:"last,omitzero"`
	Dropped   int64     `json:"dropped"`   // events the probe reported it could not write
	Truncated int64     `json:"truncated"` // events with a field the probe cut short
	Input     Stats     `json:"input"`
	Policies  []string  `json:"policies"` // distinct policy hashes, sorted (at most 16)

	ByAction  *Counter `json:"-"`
	ByMode    *Counter `json:"-"`
	ByRule    *Counter `json:"-"`
	ByProgram *Counter `json:"-"`
	ByOp      *Counter `json:"-"`
	ByPrefix  *Counter `json:"-"`

	// WouldDeny groups audit-mode denials (what enforce mode would have stopped); Denied groups
	// enforce-mode denials; Alerts groups alert events.
	// Errors counts the probe's own error events by message (policy missing or corrupt, ...).
	Errors    *Counter  `json:"-"`
	WouldDeny *GroupSet `json:"-"`
	Denied    *GroupSet `json:"-"`
	Alerts    *GroupSet `json:"-"`

	policies map[string]bool
}

// GroupSet collects distinct Groups, at most Max, with the events of groups it had no room for counted in
// Other.
type GroupSet struct {
	Max   int
	m     map[Group]*Group
	Total int64
	Other int64
}

func newGroupSet(max int) *GroupSet { return &GroupSet{Max: max, m: map[Group]*Group{}} }

func (s *GroupSet) add(e *Event) {
	s.Total++
	k := Group{Action: e.Action, Mode: e.Mode, Program: e.Program, Op: e.Op, Subject: e.Subject(), Rule: e.Rule}
	g, ok := s.m[k]
	if !ok {
		if len(s.m) >= s.Max {
			s.Other++
			return
		}
		g = &k
		s.m[k] = g
	}
	g.Count++
	if !e.TS.IsZero() {
		if g.First.IsZero() || e.TS.Before(g.First) {
			g.First = e.TS
		}
		if e.TS.After(g.Last) {
			g.Last = e.TS
		}
	}
}

// List returns the groups, most frequent first, then by program, op and subject.
func (s *GroupSet) List() []Group {
	out := make([]Group, 0, len(s.m))
	for _, g := range s.m {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Program != b.Program {
			return a.Program < b.Program
		}
		if a.Op != b.Op {
			return a.Op < b.Op
		}
		if a.Subject != b.Subject {
			return a.Subject < b.Subject
		}
		return a.Rule < b.Rule
	})
	return out
}

// NewSummary returns an empty summary bounded by lim.
func NewSummary(lim Limits) *Summary {
	if lim.Keys <= 0 {
		lim.Keys = DefaultLimits.Keys
	}
	if lim.Groups <= 0 {
		lim.Groups = DefaultLimits.Groups
	}
	return &Summary{
		ByAction: NewCounter(lim.Keys), ByMode: NewCounter(lim.Keys), ByRule: NewCounter(lim.Keys),
		ByProgram: NewCounter(lim.Keys), ByOp: NewCounter(lim.Keys), ByPrefix: NewCounter(lim.Keys),
		Errors: NewCounter(lim.Keys), WouldDeny: newGroupSet(lim.Groups), Denied: newGroupSet(lim.Groups), Alerts: newGroupSet(lim.Groups),
		policies: map[string]bool{},
	}
}

// DefaultRule is how the summaries name "no rule matched, the category default decided".
const DefaultRule = "(default)"

// Add counts one event.
func (s *Summary) Add(e *Event) {
	if e.Dropped > 0 {
		s.Dropped += e.Dropped
	}
	if e.Op == DropsOp {
		return
	}
	if e.Truncated {
		s.Truncated++
	}
	s.Events++
	if e.Action == ErrorAction {
		s.Errors.Add(e.Error+" ("+e.Subject()+")", e.TS)
		s.ByAction.Add(e.Action, e.TS)
		s.ByProgram.Add(e.Program, e.TS)
		return
	}
	if !e.TS.IsZero() {
		if s.First.IsZero() || e.TS.Before(s.First) {
			s.First = e.TS
		}
		if e.TS.After(s.Last) {
			s.Last = e.TS
		}
	}
	if e.Policy != "" && !s.policies[e.Policy] && len(s.policies) < 16 {
		s.policies[e.Policy] = true
		s.Policies = append(s.Policies, e.Policy)
		sort.Strings(s.Policies)
	}
	s.ByAction.Add(e.Action, e.TS)
	s.ByMode.Add(e.Mode, e.TS)
	rule := e.Rule
	if rule == "" {
		rule = DefaultRule
	}
	s.ByRule.Add(rule, e.TS)
	s.ByProgram.Add(e.Program, e.TS)
	s.ByOp.Add(e.Op, e.TS)
	s.ByPrefix.Add(Prefix(e), e.TS)
	switch {
	case e.WouldDeny():
		s.WouldDeny.add(e)
	case e.Action == Deny:
		s.Denied.add(e)
	case e.Action == Alert:
		s.Alerts.add(e)
	}
}

// AddStats records the input counts of one stream.
func (s *Summary) AddStats(st Stats) { s.Input.Add(st) }

// PrefixDepth is how many directory components a path prefix keeps: /usr/lib/x86_64-linux-gnu/libc.so.6
// counts under /usr/lib/x86_64-linux-gnu/.
const PrefixDepth = 3

// Prefix is the key an event is counted under in ByPrefix: a path's directory cut to PrefixDepth
// components ("/usr/lib/"), an IPv4 address's /24 or an IPv6 address's /64 with the port
// ("10.1.2.0/24:443"), a unix socket's directory ("unix:/run/"), or the syscall.
func Prefix(e *Event) string {
	switch {
	case e.Addr != "":
		return AddrPrefix(e.Addr)
	case e.Path != "":
		return pathPrefix(e.Path)
	case e.Syscall != "":
		return "syscall " + e.Syscall
	}
	return "(none)"
}

func pathPrefix(p string) string {
	if !strings.HasPrefix(p, "/") {
		return p
	}
	dir := path.Dir(p)
	if dir == "/" {
		return "/"
	}
	parts := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	if len(parts) > PrefixDepth {
		parts = parts[:PrefixDepth]
	}
	return "/" + strings.Join(parts, "/") + "/"
}

// AddrPrefix groups an event address: see Prefix.
func AddrPrefix(addr string) string {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix:" + pathPrefix(p)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	ip := ap.Addr().Unmap()
	bits := 24
	if ip.Is6() {
		bits = 64
	}
	pfx, _ := ip.Prefix(bits)
	return pfx.String() + ":" + strconv.Itoa(int(ap.Port()))
}
