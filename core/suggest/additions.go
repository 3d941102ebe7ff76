package suggest

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/crs-ci/crs-ci/core/policy"
	"github.com/crs-ci/crs-ci/core/report"
)

// Addition is what an existing policy is missing for the observed behaviour.
type Addition struct {
	File  string
	Old   []byte
	New   []byte // Old with the new rules added at the end of spec.rules; equal to Old when nothing is missing
	Diff  string // unified diff Old → New, "" when nothing is missing
	Rules []*Rule
	Notes []string // observations the existing policy denies with an explicit rule (kept), lost events, ...
}

// ErrInvalidPolicy is returned (wrapped) when the existing policy has errors; the findings say which.
var ErrInvalidPolicy = errors.New("the existing policy has errors")

// allowedBy reports whether the compiled policy lets an observation through (allow or alert), and the
// deciding rule index. Events do not say tcp or udp, so a network call counts as allowed when either is.
func allowedBy(c *policy.Compiled, q policy.Request) (bool, policy.Decision) {
	d := c.Decide(q)
	if d.Action != policy.Deny || q.Category != policy.Network || q.Unix {
		return d.Action != policy.Deny, d
	}
	for _, proto := range []uint8{policy.ProtoTCP, policy.ProtoUDP} {
		q.Protocol = proto
		if dd := c.Decide(q); dd.Action != policy.Deny {
			return true, dd
		}
	}
	return false, d
}

// Additions compares the observations with the policy in src (read from file) and proposes only
// additions: allow rules, appended to spec.rules, for what the policy's category defaults would deny.
// Observations an explicit rule of the policy denies are not overridden: they are listed in Notes for
// the reviewer. The returned findings are the existing policy's errors, when it has any.
func Additions(file string, src []byte, o *Observed, opt Options) (*Addition, []report.Finding, error) {
	p, findings := policy.Parse(file, src)
	if policy.HasErrors(findings) {
		return nil, findings, fmt.Errorf("%s: %w", file, ErrInvalidPolicy)
	}
	bin, err := policy.Compile(p)
	if err != nil {
		return nil, nil, fmt.Errorf("compiling %s: %w", file, err)
	}
	c, err := policy.Load(bin)
	if err != nil {
		return nil, nil, fmt.Errorf("loading compiled %s: %w", file, err)
	}
	a := &Addition{File: file, Old: src, New: src}
	missing := map[key]bool{}
	kept := map[string][]key{}
	for _, k := range o.sortedKeys(nil) {
		ok, d := allowedBy(c, o.request(k))
		switch {
		case ok:
		case d.Rule >= 0:
			kept[d.RuleName] = append(kept[d.RuleName], k)
		default:
			missing[k] = true
		}
	}
	var keptNames []string
	for n := range kept {
		keptNames = append(keptNames, n)
	}
	sort.Strings(keptNames)
	for _, n := range keptNames {
		ks := kept[n]
		var total int64
		for _, k := range ks {
			total += o.count(k)
		}
		ex := ks[0]
		a.Notes = append(a.Notes, fmt.Sprintf("rule %q denies %s (%s, e.g. %s %s by %s): kept, not overridden — change the rule yourself if these are legitimate",
			n, plural(int64(len(ks)), "observation"), plural(total, "event"), kindWord[ex.k], ex.subject, ex.program))
	}
	a.Notes = append(a.Notes, o.notes()...)
	if len(missing) == 0 {
		return a, nil, nil
	}
	names := map[string]bool{}
	for _, r := range p.Rules {
		names[r.Name] = true
	}
	keys, skipped := o.usable(o.sortedKeys(missing), opt.Strict)
	if n := skippedNote(skipped); n != "" {
		a.Notes = append(a.Notes, n)
	}
	for k := range skipped {
		delete(missing, k)
	}
	if len(keys) == 0 {
		return a, nil, nil
	}
	a.Rules = buildRules(o, keys, opt.Strict, names)
	var b strings.Builder
	b.WriteString("# Added by `crs-ci policy suggest --from-policy" + strictWord(opt.Strict) + "`: observed behaviour this policy's defaults deny.\n")
	writeRules(&b, a.Rules, "")
	newSrc, err := insertRules(src, b.String())
	if err != nil {
		return nil, nil, fmt.Errorf("adding rules to %s: %w", file, err)
	}
	// The result must be valid and allow every missing observation: prove it before showing it.
	np, nf := policy.Parse(file, newSrc)
	if policy.HasErrors(nf) {
		return nil, nil, fmt.Errorf("adding rules to %s gave an invalid policy (a crs-ci bug): %s", file, nf[0].Message)
	}
	nbin, err := policy.Compile(np)
	if err != nil {
		return nil, nil, fmt.Errorf("compiling the suggestion for %s: %w", file, err)
	}
	nc, err := policy.Load(nbin)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the suggestion for %s: %w", file, err)
	}
	for k := range missing {
		if ok, d := allowedBy(nc, o.request(k)); !ok {
			return nil, nil, fmt.Errorf("the suggestion for %s still denies %s %s by %s (rule %q; a crs-ci bug)", file, kindWord[k.k], k.subject, k.program, d.RuleName)
		}
	}
	a.New = newSrc
	a.Diff = UnifiedDiff("a/"+file, "b/"+file, src, newSrc)
	return a, nil, nil
}

// insertRules adds block (rule items at column 0, each line relative) to the end of spec.rules in src,
// keeping every existing byte. spec.rules may be a block sequence, an empty flow sequence, or missing.
func insertRules(src []byte, block string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the policy is not a YAML mapping")
	}
	top := doc.Content[0]
	spec := mapValue(top, "spec")
	if spec == nil || spec.Kind != yaml.MappingNode {
		return nil, errors.New("the policy has no spec mapping")
	}
	if spec.Style&yaml.FlowStyle != 0 {
		return nil, errors.New("spec is written in flow style ({...}): write it as a block mapping to get a suggestion diff")
	}
	lines := strings.SplitAfter(string(src), "\n")
	if !strings.HasSuffix(string(src), "\n") {
		lines[len(lines)-1] += "\n"
	}
	indentBlock := func(ind string) string {
		var out strings.Builder
		for _, l := range strings.SplitAfter(block, "\n") {
			if l == "" {
				continue
			}
			if strings.TrimSpace(l) == "" {
				out.WriteString("\n")
				continue
			}
			out.WriteString(ind + l)
		}
		return out.String()
	}
	insertAfter := func(line int, text string) []byte { // line is 1-based; 0 = at the start
		var out strings.Builder
		for i, l := range lines {
			out.WriteString(l)
			if i+1 == line {
				out.WriteString(text)
			}
		}
		return []byte(out.String())
	}
	keyNode, rules := mapEntry(spec, "rules")
	specIndent := strings.Repeat(" ", spec.Content[0].Column-1)
	switch {
	case rules == nil:
		end := lastLine(spec)
		return insertAfter(end, specIndent+"rules:\n"+indentBlock(specIndent+"  ")), nil
	case rules.Kind == yaml.SequenceNode && len(rules.Content) == 0 && rules.Style&yaml.FlowStyle != 0:
		// rules: [] → rules: followed by the block
		l := lines[rules.Line-1]
		col := rules.Column - 1
		if col+2 > len(l) || l[col:col+2] != "[]" {
			return nil, errors.New("could not find the empty rules list [] to replace")
		}
		lines[rules.Line-1] = strings.TrimRight(l[:col], " ") + l[col+2:]
		return insertAfter(rules.Line, indentBlock(specIndent+"  ")), nil
	case rules.Kind == yaml.SequenceNode && rules.Style&yaml.FlowStyle == 0 && len(rules.Content) > 0:
		first := rules.Content[0]
		// the dash of the first item sits before its content column
		l := lines[first.Line-1]
		dash := strings.LastIndex(l[:min(len(l), first.Column-1)], "-")
		if dash < 0 {
			return nil, errors.New("could not find the indentation of spec.rules")
		}
		last := lastLine(rules)
		return insertAfter(last, "\n"+indentBlock(strings.Repeat(" ", dash))), nil
	case rules.Kind == yaml.ScalarNode && rules.Tag == "!!null":
		// "rules:" with nothing after it
		return insertAfter(keyNode.Line, indentBlock(specIndent+"  ")), nil
	}
	return nil, errors.New("spec.rules is written in flow style ([...]): write it as a block list to get a suggestion diff")
}

func mapEntry(m *yaml.Node, k string) (*yaml.Node, *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func mapValue(m *yaml.Node, k string) *yaml.Node {
	_, v := mapEntry(m, k)
	return v
}

// lastLine is the last source line a node's subtree uses (its last scalar's line, plus the extra lines
// of a multi-line scalar).
func lastLine(n *yaml.Node) int {
	end := n.Line
	if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
		end += strings.Count(strings.TrimRight(n.Value, "\n"), "\n") + 1
	}
	for _, c := range n.Content {
		end = max(end, lastLine(c))
	}
	if n.Alias != nil {
		end = max(end, n.Line)
	}
	return end
}
