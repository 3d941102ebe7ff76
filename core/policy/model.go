// Package policy is the crs-ci/v1 runtime policy: it parses and validates the YAML format (every
// finding with file:line:col and a stable code), compiles a policy into the binary format of
// docs/compiled-policy.md, loads compiled policies back, decides requests with the same semantics as
// the C probe, and runs the policy tests kept beside a policy.
package policy

import (
	"fmt"
	"net/netip"
)

// APIVersion and Kind of the format this package reads.
const (
	APIVersion = "crs-ci/v1"
	Kind       = "RuntimePolicy"
	TestKind   = "PolicyTest"
)

// Modes.
const (
	ModeOff     = "off"
	ModeAudit   = "audit"
	ModeEnforce = "enforce"
)

// Category is the kind of call a rule or a request is about.
type Category uint8

// Categories, numbered as in the compiled format.
const (
	File    Category = 1
	Network Category = 2
	Exec    Category = 3
	Syscall Category = 4
)

var categoryNames = map[Category]string{File: "file", Network: "network", Exec: "exec", Syscall: "syscall"}

func (c Category) String() string {
	if s, ok := categoryNames[c]; ok {
		return s
	}
	return fmt.Sprintf("category(%d)", uint8(c))
}

// Action is what a rule or a default does with a call.
type Action uint8

// Actions, numbered as in the compiled format.
const (
	Allow Action = 0
	Deny  Action = 1
	Alert Action = 2
)

var actionNames = []string{"allow", "deny", "alert"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction reads allow, deny or alert.
func ParseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), true
		}
	}
	return 0, false
}

// Access bits of a file request or rule (direction bits for network).
const (
	AccessRead  uint8 = 1
	AccessWrite uint8 = 2
	Outbound    uint8 = 1
	Inbound     uint8 = 2
)

// Protocols of network rules and requests.
const (
	ProtoAny uint8 = 0
	ProtoTCP uint8 = 1
	ProtoUDP uint8 = 2
)

// Log mask bits.
const (
	LogDeny  uint8 = 1
	LogAlert uint8 = 2
	LogAllow uint8 = 4
)

// Event sink kinds.
const (
	SinkStderr uint8 = 0
	SinkFile   uint8 = 1
	SinkUnix   uint8 = 2
)

// Ops are the operations of the ignore mask, in bit order, with the category and access each implies.
var Ops = []OpInfo{
	{"read", File, AccessRead},
	{"write", File, AccessWrite},
	{"unlink", File, AccessWrite},
	{"rename", File, AccessWrite},
	{"link", File, AccessWrite},
	{"mkdir", File, AccessWrite},
	{"chmod", File, AccessWrite},
	{"exec", Exec, 0},
	{"connect", Network, Outbound},
	{"bind", Network, Inbound},
	{"syscall", Syscall, 0},
}

// OpInfo describes one operation.
type OpInfo struct {
	Name     string
	Category Category
	Access   uint8
}

// OpBit returns the ignore-mask bit of an operation name, or -1.
func OpBit(name string) int {
	for i, o := range Ops {
		if o.Name == name {
			return i
		}
	}
	return -1
}

func opNames() []string {
	out := make([]string, len(Ops))
	for i, o := range Ops {
		out[i] = o.Name
	}
	return out
}

// Policy is a parsed crs-ci/v1 RuntimePolicy. Only a policy without error findings compiles.
type Policy struct {
	File     string
	name     string
	Mode     string
	LogMask  uint8
	Sink     uint8
	SinkPath string
	Defaults [5]Action // indexed by Category
	Ignore   uint32
	Lists    map[string]*List
	Rules    []*Rule
}

// List is a named list of values (`lists:`), referenced as @name.
type List struct {
	Name  string
	Line  int
	Items []Item
	used  bool
}

// Item is one scalar value with its position.
type Item struct {
	Value     string
	Line, Col int
	IsInt     bool   // a YAML integer (ports)
	From      string // list it came from, "" when written inline
}

// Rule is one parsed rule.
type Rule struct {
	Name      string
	Line, Col int
	Action    Action
	Program   string // "" = any program
	Category  Category
	Access    uint8 // file: read/write mask; network: direction mask
	Protocol  uint8
	Paths     []string // file and exec globs, network unix socket globs; lists expanded, deduplicated
	Prefixes  []netip.Prefix
	Ports     [][2]uint16
	Syscalls  []string // names
	pathItems []Item
}

// Name is the policy's metadata.name.
func (p *Policy) Name() string { return p.name }

// SetMode overrides spec.mode (the mode flag of a CI run).
func (p *Policy) SetMode(mode string) error {
	switch mode {
	case ModeEnforce, ModeAudit, ModeOff:
		p.Mode = mode
		return nil
	}
	return fmt.Errorf("mode %q: want enforce, audit or off", mode)
}
