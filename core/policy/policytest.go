package policy

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/exitcode"
)

// TestFile is a parsed policy test file (kind PolicyTest), kept beside the policy as NAME.test.yaml.
type TestFile struct {
	File   string
	Policy string // the policy file, resolved relative to the test file ("" = NAME.yaml beside it)
	Cases  []TestCase
}

// TestCase is one table row: a request and the expected decision.
type TestCase struct {
	Name     string `yaml:"name"`
	Op       string `yaml:"op"`
	Path     string `yaml:"path"`
	Address  string `yaml:"address"`
	Protocol string `yaml:"protocol"`
	Access   string `yaml:"access"`
	Program  string `yaml:"program"`
	Syscall  string `yaml:"syscall"`
	Arch     string `yaml:"arch"`
	Expect   string `yaml:"expect"`
	Rule     string `yaml:"rule"`
	Line     int    `yaml:"-"`
}

type testFileYAML struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Policy     string      `yaml:"policy"`
	Arch       string      `yaml:"arch"`
	Tests      []yaml.Node `yaml:"tests"`
}

// ParseTestFile reads a policy test file. Problems with it are usage errors (exit 2) naming file:line.
func ParseTestFile(file string) (*TestFile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, exitcode.Operationalf("reading policy test file %s: %w", file, err)
	}
	if len(data) > MaxFileSize {
		return nil, exitcode.Usagef("%s: policy test file is larger than %d bytes", file, MaxFileSize)
	}
	var raw testFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, exitcode.Usagef("%s: %v", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if raw.APIVersion != APIVersion || raw.Kind != TestKind {
		return nil, exitcode.Usagef("%s: want apiVersion: %s and kind: %s", file, APIVersion, TestKind)
	}
	tf := &TestFile{File: file}
	if raw.Policy != "" {
		tf.Policy = filepath.Join(filepath.Dir(file), raw.Policy)
	}
	if len(raw.Tests) == 0 {
		return nil, exitcode.Usagef("%s: no tests (write tests: with one entry per request)", file)
	}
	names := map[string]int{}
	for _, n := range raw.Tests {
		var tc TestCase
		if err := n.Decode(&tc); err != nil {
			return nil, exitcode.Usagef("%s:%d: %v", file, n.Line, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if !knownTestKey(n.Content[i].Value) {
					return nil, exitcode.Usagef("%s:%d:%d: unknown key %q in a test (%s)", file, n.Content[i].Line, n.Content[i].Column, n.Content[i].Value, didYouMean(n.Content[i].Value, testKeys))
				}
			}
		}
		tc.Line = n.Line
		if tc.Arch == "" {
			tc.Arch = raw.Arch
		}
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("line %d", n.Line)
		}
		if prev, dup := names[tc.Name]; dup {
			return nil, exitcode.Usagef("%s:%d: test %q is defined twice (first at line %d)", file, n.Line, tc.Name, prev)
		}
		names[tc.Name] = n.Line
		if _, err := tc.Request(); err != nil {
			return nil, exitcode.Usagef("%s:%d: test %q: %v", file, n.Line, tc.Name, err)
		}
		if _, ok := ParseAction(tc.Expect); !ok {
			return nil, exitcode.Usagef("%s:%d: test %q: expect %q is not allow, deny or alert", file, n.Line, tc.Name, tc.Expect)
		}
		tf.Cases = append(tf.Cases, tc)
	}
	return tf, nil
}

var testKeys = []string{"name", "op", "path", "address", "protocol", "access", "program", "syscall", "arch", "expect", "rule"}

func knownTestKey(k string) bool {
	for _, t := range testKeys {
		if t == k {
			return true
		}
	}
	return false
}

// Request turns a test case into the request the probe would decide.
func (tc TestCase) Request() (Request, error) {
	b := OpBit(tc.Op)
	if b < 0 {
		hint := didYouMean(tc.Op, opNames())
		return Request{}, fmt.Errorf("op %q is not one of %s %s", tc.Op, strings.Join(opNames(), ", "), hint)
	}
	op := Ops[b]
	q := Request{Category: op.Category, Op: op.Name, Access: op.Access, Program: tc.Program, Arch: tc.Arch}
	if tc.Program != "" && !strings.HasPrefix(tc.Program, "/") {
		return q, fmt.Errorf("program %q is not an absolute path", tc.Program)
	}
	if q.Arch != "" && q.Arch != "amd64" && q.Arch != "arm64" {
		return q, fmt.Errorf("arch %q is not amd64 or arm64", q.Arch)
	}
	switch op.Category {
	case File, Exec:
		if !strings.HasPrefix(tc.Path, "/") {
			return q, fmt.Errorf("op %s needs an absolute path:", tc.Op)
		}
		q.Path = path.Clean(tc.Path)
		if op.Category == File && tc.Access != "" {
			switch tc.Access {
			case "read":
				q.Access = AccessRead
			case "write":
				q.Access = AccessWrite
			case "rw":
				q.Access = AccessRead | AccessWrite
			default:
				return q, fmt.Errorf("access %q is not read, write or rw", tc.Access)
			}
		}
	case Network:
		if tc.Address == "" {
			return q, fmt.Errorf("op %s needs an address: (IP:PORT, [IPv6]:PORT or unix:/path)", tc.Op)
		}
		if err := parseNetSubject(tc.Address, &q); err != nil {
			return q, err
		}
		switch tc.Protocol {
		case "", "any":
		case "tcp":
			q.Protocol = ProtoTCP
		case "udp":
			q.Protocol = ProtoUDP
		default:
			return q, fmt.Errorf("protocol %q is not tcp or udp", tc.Protocol)
		}
	case Syscall:
		nr, ok := SyscallNumber(tc.Syscall, tc.Arch)
		if !ok {
			return q, fmt.Errorf("syscall %q is not a system call on %s %s", tc.Syscall, archName(tc.Arch), didYouMean(tc.Syscall, syscallNames()))
		}
		q.Syscall = uint32(nr)
	}
	return q, nil
}

func archName(a string) string {
	if a == "arm64" {
		return "arm64"
	}
	return "amd64"
}

// parseNetSubject reads IP:PORT, [IPv6]:PORT or unix:PATH into q.
func parseNetSubject(s string, q *Request) error {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("unix socket path %q is not absolute", p)
		}
		q.Unix, q.Path = true, path.Clean(p)
		return nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("address %q is not IP:PORT, [IPv6]:PORT or unix:/path", s)
	}
	q.Addr, q.Port = ap.Addr(), ap.Port()
	return nil
}

// TestResult is the outcome of one test case.
type TestResult struct {
	Case TestCase
	Got  Decision
	Pass bool
	Why  string // for a failure: what was expected and what happened
}

// Run decides every case with the compiled policy.
func (tf *TestFile) Run(c *Compiled) []TestResult {
	out := make([]TestResult, 0, len(tf.Cases))
	for _, tc := range tf.Cases {
		q, _ := tc.Request()
		d := c.Decide(q)
		res := TestResult{Case: tc, Got: d, Pass: true}
		want, _ := ParseAction(tc.Expect)
		gotRule := d.RuleName
		if d.Rule < 0 {
			gotRule = "default"
		}
		if tc.Rule != "" && tc.Rule != "default" && !c.hasRule(tc.Rule) {
			res.Pass = false
			res.Why = fmt.Sprintf("the policy has no rule named %q %s", tc.Rule, didYouMean(tc.Rule, c.ruleNames()))
		} else if d.Action != want || (tc.Rule != "" && tc.Rule != gotRule) {
			res.Pass = false
			wantRule := ""
			if tc.Rule != "" {
				wantRule = " by rule " + strconv.Quote(tc.Rule)
			}
			res.Why = fmt.Sprintf("want %s%s, got %s by %s", tc.Expect, wantRule, d.Action, describeRule(c, d))
		}
		out = append(out, res)
	}
	return out
}

func describeRule(c *Compiled, d Decision) string {
	if d.Rule < 0 {
		return "the default"
	}
	return fmt.Sprintf("rule %q (line %d)", d.RuleName, c.Rules[d.Rule].Line)
}

func (c *Compiled) hasRule(name string) bool {
	for _, r := range c.Rules {
		if r.Name == name {
			return true
		}
	}
	return false
}

func (c *Compiled) ruleNames() []string {
	out := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		out[i] = r.Name
	}
	return out
}
