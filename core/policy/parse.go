package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/exitcode"
	"github.com/crs-ci/crs-ci/core/report"
)

// Limits that keep validation bounded in time and memory whatever the input.
const (
	// MaxFileSize is the largest policy file read; bigger files are rejected before parsing.
	MaxFileSize = 1 << 20
	// maxNodeVisits bounds the YAML nodes visited, aliases included (a defence against alias bombs).
	maxNodeVisits = 200_000
	// maxValues bounds the values of one rule after list expansion.
	maxValues = 10_000
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$`)
	listNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// ParseFile reads and parses a policy file. The error is only for I/O (exit code 3); every problem with
// the content is a finding.
func ParseFile(path string) (*Policy, []report.Finding, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, exitcode.Operationalf("reading policy %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, exitcode.Operationalf("reading policy %s: %w", path, err)
	}
	p, fs := Parse(path, data)
	return p, fs, nil
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []report.Finding) bool {
	for _, f := range fs {
		if f.Severity == report.Error {
			return true
		}
	}
	return false
}

// Parse validates a policy and returns it with every finding (errors and warnings), sorted by position.
// The policy is nil when the document could not be read at all; it compiles only without errors.
func Parse(file string, data []byte) (*Policy, []report.Finding) {
	ps := &parser{file: file, seen: map[string]bool{}, misspelt: map[*yaml.Node][]string{}}
	p := ps.parse(data)
	if p != nil && !HasErrors(ps.findings) {
		ps.warnings(p)
	}
	sortFindings(ps.findings)
	return p, ps.findings
}

func sortFindings(fs []report.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Line != fs[j].Line {
			return fs[i].Line < fs[j].Line
		}
		return fs[i].Column < fs[j].Column
	})
}

type parser struct {
	file     string
	findings []report.Finding
	seen     map[string]bool
	visits   int
	tooDeep  bool
	// lastAlias is the last alias followed: a too-complex finding points at it
	lastAlias *yaml.Node
	// misspelt holds, per mapping, the known keys an unknown key was taken for: such a key is not
	// reported missing as well
	misspelt map[*yaml.Node][]string
	p        *Policy
}

func (ps *parser) add(sev string, line, col int, code, hint, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	key := fmt.Sprintf("%d:%d:%s:%s", line, col, code, msg)
	if ps.seen[key] {
		return
	}
	ps.seen[key] = true
	ps.findings = append(ps.findings, report.Finding{
		Code: code, Severity: sev, Message: msg, File: ps.file, Line: line, Column: col, Hint: hint,
	})
}

// missing reports a required key as missing, unless a misspelling of it was already reported.
func (ps *parser) missing(m *yaml.Node, key string, at *yaml.Node, hint, format string, args ...any) {
	for _, k := range ps.misspelt[ps.node(m)] {
		if k == key {
			return
		}
	}
	ps.errAt(at, "missing-field", hint, format, args...)
}

func (ps *parser) errAt(n *yaml.Node, code, hint, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	ps.add(report.Error, line, col, code, hint, format, args...)
}

func (ps *parser) warnAt(line, col int, code, hint, format string, args ...any) {
	ps.add(report.Warning, line, col, code, hint, format, args...)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (ps *parser) parse(data []byte) (p *Policy) {
	if len(data) > MaxFileSize {
		ps.add(report.Error, 1, 1, "file-too-large", "split the policy or use lists and globs to shorten it",
			"policy file is larger than %d bytes", MaxFileSize)
		return nil
	}
	if !utf8.Valid(data) {
		line, col := invalidUTF8Pos(data)
		ps.add(report.Error, line, col, "not-utf8", "save the file as UTF-8", "invalid UTF-8 byte sequence")
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("yaml: %v", r)
			}
		}()
		return dec.Decode(&doc)
	}()
	if errors.Is(err, io.EOF) {
		ps.add(report.Error, 1, 1, "empty-policy", "start with apiVersion: crs-ci/v1 and kind: RuntimePolicy", "the file holds no YAML document")
		return nil
	}
	if err != nil {
		ps.yamlError(err, data)
		return nil
	}
	var extra yaml.Node
	if err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("yaml: %v", r)
			}
		}()
		return dec.Decode(&extra)
	}(); err == nil {
		ps.errAt(&extra, "multiple-documents", "keep one policy per file", "the file holds more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		ps.yamlError(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			ps.add(report.Error, 1, 1, "empty-policy", "start with apiVersion: crs-ci/v1 and kind: RuntimePolicy", "the file holds no YAML document")
			return nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		ps.add(report.Error, 1, 1, "empty-policy", "start with apiVersion: crs-ci/v1 and kind: RuntimePolicy", "the file holds no YAML document")
		return nil
	}
	p = &Policy{File: ps.file, Mode: ModeEnforce, LogMask: LogDeny | LogAlert, Lists: map[string]*List{}}
	ps.p = p
	ps.top(root)
	return p
}

var unknownAnchorRE = regexp.MustCompile(`^unknown anchor '([^']*)' referenced`)

// findText returns the 1-based line and column of the first occurrence of t in data (1:1 if absent).
func findText(data []byte, t string) (int, int) {
	i := bytes.Index(data, []byte(t))
	if i < 0 {
		return 1, 1
	}
	line := 1 + bytes.Count(data[:i], []byte("\n"))
	return line, i - bytes.LastIndexByte(data[:i], '\n')
}

func (ps *parser) yamlError(err error, data []byte) {
	msg := err.Error()
	line := 1
	col := 1
	if m := yamlLineRE.FindStringSubmatch(strings.SplitN(msg, "\n", 2)[0]); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		// yaml.v3 reports parser errors (not scanner errors) with a 0-based line.
		if strings.HasPrefix(msg, "did not find expected") {
			line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
			line, col = findText(data, "*"+m[1])
		}
	}
	hint := "check the indentation and the quoting on this line"
	if lines := bytes.Split(data, []byte("\n")); line >= 1 && line <= len(lines) {
		if indent := bytes.TrimLeft(lines[line-1], " "); len(indent) > 0 && indent[0] == '\t' {
			hint = "YAML indentation must use spaces, not tabs"
		}
	}
	if strings.Contains(msg, "tab") {
		hint = "YAML indentation must use spaces, not tabs"
	}
	ps.add(report.Error, line, col, "yaml-syntax", hint, "YAML syntax: %s", msg)
}

func invalidUTF8Pos(data []byte) (int, int) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line, col
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return line, col
}

// node follows aliases and counts visits; it returns nil once the budget is spent.
func (ps *parser) node(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode; depth++ {
		if depth > 100 {
			return nil
		}
		ps.lastAlias = n
		n = n.Alias
	}
	ps.visits++
	if ps.visits > maxNodeVisits {
		if !ps.tooDeep {
			ps.tooDeep = true
			if ps.lastAlias != nil {
				n = ps.lastAlias
			}
			ps.errAt(n, "too-complex", "remove YAML aliases that multiply content (an alias bomb); use lists: instead",
				"the policy expands to more than %d YAML nodes", maxNodeVisits)
		}
		return nil
	}
	return n
}

var kindNames = map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a scalar"}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!bool":
			return "a boolean"
		case "!!float":
			return "a number"
		case "!!null":
			return "nothing (null)"
		}
	}
	if s, ok := kindNames[n.Kind]; ok {
		return s
	}
	return "an unexpected node"
}

// field is one key of a mapping with its value.
type field struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping, reports unknown and duplicate keys, and returns the known keys.
func (ps *parser) mapping(n *yaml.Node, what string, known []string) (map[string]field, bool) {
	if n = ps.node(n); n == nil {
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		ps.errAt(n, "wrong-type", fmt.Sprintf("%s takes keys: %s", what, strings.Join(known, ", ")),
			"%s must be a mapping, got %s", what, describe(n))
		return nil, false
	}
	out := map[string]field{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := ps.node(n.Content[i]), n.Content[i+1]
		if k == nil {
			return out, false
		}
		if k.Kind != yaml.ScalarNode {
			ps.errAt(k, "wrong-type", "keys are plain words", "a key in %s must be a scalar", what)
			continue
		}
		if k.Value == "<<" {
			ps.errAt(k, "unsupported-yaml", "write the keys out, or use lists: for shared values", "YAML merge keys (<<) are not supported")
			continue
		}
		isKnown := false
		for _, kn := range known {
			if kn == k.Value {
				isKnown = true
			}
		}
		if !isKnown {
			if c := closest(k.Value, known); c != "" {
				ps.misspelt[n] = append(ps.misspelt[n], c)
			}
			hint := didYouMean(k.Value, known)
			if hint == "" {
				hint = fmt.Sprintf("%s takes keys: %s", what, strings.Join(known, ", "))
			}
			ps.errAt(k, "unknown-key", hint, "unknown key %q in %s", k.Value, what)
			continue
		}
		if prev, dup := out[k.Value]; dup {
			ps.errAt(k, "duplicate-key", "remove one of them", "key %q appears twice in %s (first at line %d)", k.Value, what, prev.key.Line)
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out, true
}

// str returns a string scalar.
func (ps *parser) str(n *yaml.Node, what string) (string, bool) {
	if n = ps.node(n); n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			hint = fmt.Sprintf("quote it: %q", n.Value)
		}
		ps.errAt(n, "wrong-type", hint, "%s must be a string, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// enum returns a string scalar that must be one of opts.
func (ps *parser) enum(n *yaml.Node, what string, opts []string) (string, bool) {
	s, ok := ps.str(n, what)
	if !ok {
		return "", false
	}
	for _, o := range opts {
		if s == o {
			return s, true
		}
	}
	hint := didYouMean(s, opts)
	if hint == "" {
		hint = "use " + oneOf(opts)
	}
	ps.errAt(ps.node(n), "bad-value", hint, "%s %q is not one of %s", what, s, oneOf(opts))
	return "", false
}

// items returns the scalar elements of a list (a single scalar counts as a list of one).
func (ps *parser) items(n *yaml.Node, what string) ([]Item, bool) {
	if n = ps.node(n); n == nil {
		return nil, false
	}
	var elems []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		elems = []*yaml.Node{n}
	case yaml.SequenceNode:
		elems = n.Content
	default:
		ps.errAt(n, "wrong-type", "write a list such as [a, b]", "%s must be a list, got %s", what, describe(n))
		return nil, false
	}
	ok := true
	out := make([]Item, 0, len(elems))
	for _, e := range elems {
		if e = ps.node(e); e == nil {
			return nil, false
		}
		if e.Kind != yaml.ScalarNode || (e.Tag != "!!str" && e.Tag != "!!int") {
			ps.errAt(e, "wrong-type", "each entry is one string (or a port number)", "an entry of %s must be a string, got %s", what, describe(e))
			ok = false
			continue
		}
		out = append(out, Item{Value: e.Value, Line: e.Line, Col: e.Column, IsInt: e.Tag == "!!int"})
	}
	return out, ok
}

func (ps *parser) top(root *yaml.Node) {
	p := ps.p
	top, ok := ps.mapping(root, "the policy", []string{"apiVersion", "kind", "metadata", "spec"})
	if !ok {
		return
	}
	if f, ok := top["apiVersion"]; !ok {
		ps.missing(root, "apiVersion", root, "add apiVersion: crs-ci/v1", "apiVersion is missing")
	} else if v, ok := ps.str(f.val, "apiVersion"); ok && v != APIVersion {
		ps.errAt(f.val, "bad-value", "write apiVersion: crs-ci/v1", "apiVersion %q is not supported (this crs-ci reads %s)", v, APIVersion)
	}
	if f, ok := top["kind"]; !ok {
		ps.missing(root, "kind", root, "add kind: RuntimePolicy", "kind is missing")
	} else if v, ok := ps.str(f.val, "kind"); ok && v != Kind {
		hint := "write kind: RuntimePolicy"
		if v == TestKind {
			hint = "this is a policy test file: run it with crs-ci policy test"
		}
		ps.errAt(f.val, "bad-value", hint, "kind %q is not %s", v, Kind)
	}
	if f, ok := top["metadata"]; !ok {
		ps.missing(root, "metadata", root, "add metadata: {name: my-policy}", "metadata is missing")
	} else if md, ok := ps.mapping(f.val, "metadata", []string{"name", "description", "labels"}); ok {
		if nf, ok := md["name"]; !ok {
			ps.missing(f.val, "name", f.key, "add name: my-policy under metadata", "metadata.name is missing")
		} else if name, ok := ps.str(nf.val, "metadata.name"); ok {
			if !nameRE.MatchString(name) {
				ps.errAt(nf.val, "bad-name", "use letters, digits, '.', '_' and '-', starting and ending with a letter or digit (at most 128)", "metadata.name %q is not a valid name", name)
			}
			p.name = name
		}
		if df, ok := md["description"]; ok {
			ps.str(df.val, "metadata.description")
		}
		if lf, ok := md["labels"]; ok {
			if ln := ps.node(lf.val); ln != nil {
				if ln.Kind != yaml.MappingNode {
					ps.errAt(ln, "wrong-type", "write labels: {team: payments}", "metadata.labels must be a mapping, got %s", describe(ln))
				} else {
					for i := 0; i+1 < len(ln.Content); i += 2 {
						ps.str(ln.Content[i], "a label key")
						ps.str(ln.Content[i+1], "a label value")
					}
				}
			}
		}
	}
	if f, ok := top["spec"]; !ok {
		ps.missing(root, "spec", root, "add spec: with defaults and rules", "spec is missing")
	} else {
		ps.spec(f)
	}
}

var specKeys = []string{"mode", "logMode", "events", "defaults", "lists", "rules", "ignore"}

func (ps *parser) spec(sf field) {
	p := ps.p
	spec, ok := ps.mapping(sf.val, "spec", specKeys)
	if !ok {
		return
	}
	if f, ok := spec["mode"]; ok {
		if m, ok := ps.enum(f.val, "mode", []string{ModeEnforce, ModeAudit, ModeOff}); ok {
			p.Mode = m
		}
	}
	if f, ok := spec["logMode"]; ok {
		ps.logMode(f.val)
	}
	if f, ok := spec["events"]; ok {
		ps.events(f.val)
	}
	if f, ok := spec["defaults"]; ok {
		cats := []string{"file", "network", "exec", "syscall"}
		if d, ok := ps.mapping(f.val, "defaults", cats); ok {
			for i, c := range cats {
				if df, ok := d[c]; ok {
					if a, ok := ps.enum(df.val, "defaults."+c, actionNames); ok {
						p.Defaults[i+1], _ = ParseAction(a)
					}
				}
			}
		}
	}
	if f, ok := spec["ignore"]; ok {
		if its, ok := ps.items(f.val, "ignore"); ok {
			for _, it := range its {
				b := OpBit(it.Value)
				if b < 0 {
					hint := didYouMean(it.Value, opNames())
					if hint == "" {
						hint = "operations: " + strings.Join(opNames(), ", ")
					}
					ps.add(report.Error, it.Line, it.Col, "bad-value", hint, "ignore: %q is not an operation", it.Value)
					continue
				}
				p.Ignore |= 1 << b
			}
		}
	}
	if f, ok := spec["lists"]; ok {
		ps.lists(f.val)
	}
	if f, ok := spec["rules"]; ok {
		ps.rules(f.val)
	}
	for _, name := range sortedListNames(p.Lists) {
		l := p.Lists[name]
		if !l.used && !HasErrors(ps.findings) {
			ps.warnAt(l.Line, 1, "unused-list", "remove it or reference it as @"+name, "list %q is never used", name)
		}
	}
}

func sortedListNames(m map[string]*List) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (ps *parser) logMode(n *yaml.Node) {
	its, ok := ps.items(n, "logMode")
	if !ok {
		return
	}
	opts := []string{"deny", "alert", "allow", "none", "all"}
	var mask uint8
	for _, it := range its {
		switch it.Value {
		case "deny":
			mask |= LogDeny
		case "alert":
			mask |= LogAlert
		case "allow":
			mask |= LogAllow
		case "none", "all":
			if len(its) > 1 {
				ps.add(report.Error, it.Line, it.Col, "bad-value", fmt.Sprintf("write logMode: %s on its own", it.Value), "logMode %q cannot be combined with other values", it.Value)
				return
			}
			if it.Value == "all" {
				mask = LogDeny | LogAlert | LogAllow
			}
		default:
			hint := didYouMean(it.Value, opts)
			if hint == "" {
				hint = "use any of deny, alert, allow; or none, or all"
			}
			ps.add(report.Error, it.Line, it.Col, "bad-value", hint, "logMode %q is not one of %s", it.Value, oneOf(opts))
			return
		}
	}
	ps.p.LogMask = mask
}

func (ps *parser) events(n *yaml.Node) {
	s, ok := ps.str(n, "events")
	if !ok {
		return
	}
	n = ps.node(n)
	hint := "write stderr, file:/var/log/crs-ci/events.jsonl or unix:/run/crs-ci/events.sock"
	if s == "stderr" {
		ps.p.Sink = SinkStderr
		return
	}
	kind, path, found := strings.Cut(s, ":")
	var sink uint8
	switch kind {
	case "file":
		sink = SinkFile
	case "unix":
		sink = SinkUnix
	default:
		if found {
			if h := didYouMean(kind, []string{"file", "unix"}); h != "" {
				hint = h
			}
		} else if h := didYouMean(s, []string{"stderr"}); h != "" {
			hint = h
		}
		ps.errAt(n, "bad-value", hint, "events %q is not stderr, file:PATH or unix:PATH", s)
		return
	}
	if !strings.HasPrefix(path, "/") {
		ps.errAt(n, "relative-path", "the events path must be absolute inside the container", "events %s path %q is not absolute", kind, path)
		return
	}
	if !isLiteral(path) || strings.Contains(path, "//") || strings.HasSuffix(path, "/") {
		ps.errAt(n, "bad-path", "write a plain absolute file path", "events path %q is not a plain normalised path", path)
		return
	}
	ps.p.Sink, ps.p.SinkPath = sink, path
}

func (ps *parser) lists(n *yaml.Node) {
	if n = ps.node(n); n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		ps.errAt(n, "wrong-type", "write lists: {secrets: [/etc/shadow]}", "lists must be a mapping of names to lists, got %s", describe(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := ps.node(n.Content[i])
		if k == nil {
			return
		}
		name, ok := ps.str(k, "a list name")
		if !ok {
			continue
		}
		if !listNameRE.MatchString(name) {
			ps.errAt(k, "bad-name", "list names use letters, digits, '_' and '-'", "list name %q is not valid", name)
			continue
		}
		if prev, dup := ps.p.Lists[name]; dup {
			ps.errAt(k, "duplicate-key", "merge the two lists", "list %q is defined twice (first at line %d)", name, prev.Line)
			continue
		}
		its, ok := ps.items(n.Content[i+1], "list "+name)
		l := &List{Name: name, Line: k.Line, Items: its}
		ps.p.Lists[name] = l
		if !ok {
			continue
		}
		for _, it := range its {
			if strings.HasPrefix(it.Value, "@") {
				ps.add(report.Error, it.Line, it.Col, "nested-list", "write the values out: lists cannot reference lists", "list %q references %s", name, it.Value)
			}
		}
	}
}

// expand replaces @name references by the list's items.
func (ps *parser) expand(its []Item, what string) ([]Item, bool) {
	out := make([]Item, 0, len(its))
	ok := true
	for _, it := range its {
		if !strings.HasPrefix(it.Value, "@") {
			out = append(out, it)
			continue
		}
		name := it.Value[1:]
		l, found := ps.p.Lists[name]
		if !found {
			hint := didYouMean(name, sortedListNames(ps.p.Lists))
			if hint != "" {
				hint = strings.Replace(hint, `"`, `"@`, 1)
			} else {
				hint = "define it under spec.lists"
			}
			ps.add(report.Error, it.Line, it.Col, "undefined-list", hint, "%s: list %q is not defined", what, it.Value)
			ok = false
			continue
		}
		l.used = true
		for _, li := range l.Items {
			if strings.HasPrefix(li.Value, "@") {
				continue
			}
			li.From = name
			out = append(out, li)
		}
		ps.visits += len(l.Items)
		if len(out) > maxValues || ps.visits > maxNodeVisits {
			ps.add(report.Error, it.Line, it.Col, "too-complex", "a rule may hold at most 10000 values after list expansion", "%s expands to too many values", what)
			return nil, false
		}
	}
	return out, ok
}

func (ps *parser) rules(n *yaml.Node) {
	if n = ps.node(n); n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		ps.errAt(n, "wrong-type", "rules is a list: each rule starts with '- name: ...'", "rules must be a list, got %s", describe(n))
		return
	}
	names := map[string]int{}
	for _, rn := range n.Content {
		if ps.tooDeep {
			return
		}
		r := ps.rule(rn)
		if r == nil {
			continue
		}
		if r.Name != "" {
			if prev, dup := names[r.Name]; dup {
				ps.add(report.Error, r.Line, r.Col, "duplicate-rule-name", "rule names are unique: rename one", "rule %q is defined twice (first at line %d)", r.Name, prev)
			} else {
				names[r.Name] = r.Line
			}
		}
		ps.p.Rules = append(ps.p.Rules, r)
	}
}

var ruleKeys = []string{"name", "description", "action", "program", "file", "network", "exec", "syscall"}

func (ps *parser) rule(rn *yaml.Node) *Rule {
	rn = ps.node(rn)
	if rn == nil {
		return nil
	}
	m, ok := ps.mapping(rn, "a rule", ruleKeys)
	if !ok {
		return nil
	}
	r := &Rule{Line: rn.Line, Col: rn.Column}
	what := fmt.Sprintf("rule at line %d", rn.Line)
	if f, ok := m["name"]; !ok {
		ps.missing(rn, "name", rn, "give every rule a unique name: - name: no-secrets", "rule has no name")
	} else if name, ok := ps.str(f.val, "rule name"); ok {
		if !nameRE.MatchString(name) {
			ps.errAt(f.val, "bad-name", "use letters, digits, '.', '_' and '-', starting and ending with a letter or digit", "rule name %q is not valid", name)
		}
		r.Name = name
		what = fmt.Sprintf("rule %q", name)
	}
	if f, ok := m["description"]; ok {
		ps.str(f.val, "description")
	}
	if f, ok := m["action"]; !ok {
		ps.missing(rn, "action", rn, "add action: allow, deny or alert", "%s has no action", what)
	} else if a, ok := ps.enum(f.val, what+": action", actionNames); ok {
		r.Action, _ = ParseAction(a)
	}
	if f, ok := m["program"]; ok {
		if prog, ok := ps.str(f.val, "program"); ok {
			if prob, hint := checkGlob(prog); prob != "" {
				code := "bad-glob"
				if !strings.HasPrefix(prog, "/") {
					code = "relative-path"
				}
				ps.errAt(f.val, code, hint, "%s: program: %s", what, prob)
			} else {
				r.Program = prog
			}
		}
	}
	var blocks []field
	for _, c := range []string{"file", "network", "exec", "syscall"} {
		if f, ok := m[c]; ok {
			blocks = append(blocks, f)
		}
	}
	sort.Slice(blocks, func(i, j int) bool {
		return blocks[i].key.Line < blocks[j].key.Line || (blocks[i].key.Line == blocks[j].key.Line && blocks[i].key.Column < blocks[j].key.Column)
	})
	switch len(blocks) {
	case 0:
		ps.errAt(rn, "no-category", "add exactly one of file:, network:, exec:, syscall:", "%s has none of file, network, exec, syscall", what)
		return r
	case 1:
	default:
		ps.errAt(blocks[1].key, "multiple-categories", "split it into one rule per category", "%s has both %s and %s: a rule has exactly one category", what, blocks[0].key.Value, blocks[1].key.Value)
		return r
	}
	b := blocks[0]
	switch b.key.Value {
	case "file":
		r.Category = File
		ps.fileBlock(r, b, what)
	case "exec":
		r.Category = Exec
		ps.execBlock(r, b, what)
	case "network":
		r.Category = Network
		ps.networkBlock(r, b, what)
	case "syscall":
		r.Category = Syscall
		ps.syscallBlock(r, b, what)
	}
	return r
}

func (ps *parser) paths(r *Rule, f field, what string) bool {
	its, ok := ps.items(f.val, what)
	if !ok {
		return false
	}
	its, ok = ps.expand(its, what)
	if !ok {
		return false
	}
	if len(its) == 0 {
		ps.errAt(ps.node(f.val), "empty-list", "list at least one path glob", "%s is empty", what)
		return false
	}
	seen := map[string]bool{}
	for _, it := range its {
		if prob, hint := checkGlob(it.Value); prob != "" {
			code := "bad-glob"
			if !strings.HasPrefix(it.Value, "/") && it.Value != "" {
				code = "relative-path"
			}
			if it.From != "" {
				prob += fmt.Sprintf(" (in list %q)", it.From)
			}
			ps.add(report.Error, it.Line, it.Col, code, hint, "%s: %s", what, prob)
			ok = false
			continue
		}
		if !seen[it.Value] {
			seen[it.Value] = true
			r.Paths = append(r.Paths, it.Value)
			r.pathItems = append(r.pathItems, it)
		}
	}
	return ok
}

func (ps *parser) fileBlock(r *Rule, b field, what string) {
	m, ok := ps.mapping(b.val, "file", []string{"paths", "access"})
	if !ok {
		return
	}
	if f, ok := m["paths"]; ok {
		ps.paths(r, f, what+": file.paths")
	} else {
		ps.missing(b.val, "paths", b.key, "add paths: [/etc/shadow]", "%s: file has no paths", what)
	}
	r.Access = AccessRead | AccessWrite
	if f, ok := m["access"]; ok {
		if its, ok := ps.items(f.val, "access"); ok {
			r.Access = 0
			for _, it := range its {
				switch it.Value {
				case "read":
					r.Access |= AccessRead
				case "write":
					r.Access |= AccessWrite
				default:
					hint := didYouMean(it.Value, []string{"read", "write"})
					if hint == "" {
						hint = "use read, write or both"
					}
					ps.add(report.Error, it.Line, it.Col, "bad-value", hint, "%s: access %q is not read or write", what, it.Value)
				}
			}
			if len(its) == 0 {
				ps.errAt(ps.node(f.val), "empty-list", "use [read], [write] or [read, write], or leave access out for both", "%s: access is empty", what)
			}
		}
	}
}

func (ps *parser) execBlock(r *Rule, b field, what string) {
	m, ok := ps.mapping(b.val, "exec", []string{"paths"})
	if !ok {
		return
	}
	if f, ok := m["paths"]; ok {
		ps.paths(r, f, what+": exec.paths")
	} else {
		ps.missing(b.val, "paths", b.key, "add paths: [/bin/sh]", "%s: exec has no paths", what)
	}
}

func (ps *parser) syscallBlock(r *Rule, b field, what string) {
	m, ok := ps.mapping(b.val, "syscall", []string{"names"})
	if !ok {
		return
	}
	f, ok := m["names"]
	if !ok {
		ps.missing(b.val, "names", b.key, "add names: [ptrace]", "%s: syscall has no names", what)
		return
	}
	its, ok := ps.items(f.val, what+": syscall.names")
	if !ok {
		return
	}
	if its, ok = ps.expand(its, what+": syscall.names"); !ok {
		return
	}
	if len(its) == 0 {
		ps.errAt(ps.node(f.val), "empty-list", "name at least one syscall", "%s: syscall.names is empty", what)
	}
	seen := map[string]bool{}
	for _, it := range its {
		if _, ok := lookupSyscall(it.Value); !ok {
			hint := didYouMean(it.Value, syscallNames())
			if hint == "" {
				hint = "use the Linux name of the system call, as in man 2 syscalls"
			}
			ps.add(report.Error, it.Line, it.Col, "unknown-syscall", hint, "%s: %q is not a Linux system call on x86_64 or aarch64", what, it.Value)
			continue
		}
		if !seen[it.Value] {
			seen[it.Value] = true
			r.Syscalls = append(r.Syscalls, it.Value)
		}
	}
}

// parseListOf reads a list (with @list references expanded) whose items each parse into a T; an item that
// does not parse is an error with code at its own position. name is the key, for the empty-list hint.
func parseListOf[T any](ps *parser, f field, w, name, code string, parse func(string) (T, string, string)) []T {
	its, ok := ps.items(f.val, w)
	if !ok {
		return nil
	}
	if its, ok = ps.expand(its, w); !ok {
		return nil
	}
	if len(its) == 0 {
		ps.errAt(ps.node(f.val), "empty-list", fmt.Sprintf("list %s, or leave %s out to match any", name, name), "%s is empty", w)
	}
	var out []T
	for _, it := range its {
		v, prob, hint := parse(it.Value)
		if prob != "" {
			if it.From != "" {
				prob += fmt.Sprintf(" (in list %q)", it.From)
			}
			ps.add(report.Error, it.Line, it.Col, code, hint, "%s: %s", w, prob)
			continue
		}
		out = append(out, v)
	}
	return out
}

func (ps *parser) networkBlock(r *Rule, b field, what string) {
	m, ok := ps.mapping(b.val, "network", []string{"direction", "addresses", "ports", "protocol", "unix"})
	if !ok {
		return
	}
	r.Access = Outbound | Inbound
	if f, ok := m["direction"]; ok {
		if d, ok := ps.enum(f.val, what+": direction", []string{"outbound", "inbound", "any"}); ok {
			r.Access = map[string]uint8{"outbound": Outbound, "inbound": Inbound, "any": Outbound | Inbound}[d]
		}
	}
	if f, ok := m["protocol"]; ok {
		if pr, ok := ps.enum(f.val, what+": protocol", []string{"tcp", "udp", "any"}); ok {
			r.Protocol = map[string]uint8{"any": ProtoAny, "tcp": ProtoTCP, "udp": ProtoUDP}[pr]
		}
	}
	if f, ok := m["unix"]; ok {
		ps.paths(r, f, what+": network.unix")
		for _, k := range []string{"addresses", "ports"} {
			if g, ok := m[k]; ok {
				ps.errAt(g.key, "unix-with-ip", "put unix socket paths and IP addresses/ports in separate rules", "%s: network.unix cannot be combined with %s", what, k)
			}
		}
	}
	if f, ok := m["addresses"]; ok {
		r.Prefixes = parseListOf(ps, f, what+": network.addresses", "addresses", "invalid-address", parseAddress)
	}
	if f, ok := m["ports"]; ok {
		r.Ports = parseListOf(ps, f, what+": network.ports", "ports", "invalid-port", parsePort)
	}
}

// parseAddress reads a CIDR or a single IP address.
func parseAddress(s string) (netip.Prefix, string, string) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Sprintf("address %q has an IPv6 zone", s), "remove the %zone: rules match addresses, not interfaces"
	}
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not a valid CIDR", s), cidrHint(s)
		}
		if pf.Masked() != pf {
			return netip.Prefix{}, fmt.Sprintf("CIDR %q has host bits set", s), fmt.Sprintf("did you mean %q?", pf.Masked().String())
		}
		return pf, "", ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or CIDR", s), "write an address such as 10.0.0.1, 2001:db8::1, or a CIDR such as 10.0.0.0/8 (host names are not supported)"
	}
	return netip.PrefixFrom(a, a.BitLen()), "", ""
}

func cidrHint(s string) string {
	addr, bits, _ := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return fmt.Sprintf("%q is not an IP address", addr)
	}
	if n, err := strconv.Atoi(bits); err != nil || n < 0 || n > a.BitLen() {
		return fmt.Sprintf("the prefix length must be a number from 0 to %d", a.BitLen())
	}
	return "write a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
}

// parsePort reads a port number or an a-b range.
func parsePort(s string) ([2]uint16, string, string) {
	hint := "write a port number 0-65535 or a range such as 8000-8999"
	lo, hi, isRange := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 10, 32)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.ParseUint(hi, 10, 32)
	}
	if err1 != nil || err2 != nil {
		return [2]uint16{}, fmt.Sprintf("%q is not a port or a port range", s), hint
	}
	if a > 65535 || b > 65535 {
		return [2]uint16{}, fmt.Sprintf("port %q is out of range", s), "ports go from 0 to 65535"
	}
	if a > b {
		return [2]uint16{}, fmt.Sprintf("port range %q is reversed", s), fmt.Sprintf("did you mean \"%d-%d\"?", b, a)
	}
	return [2]uint16{uint16(a), uint16(b)}, "", ""
}
