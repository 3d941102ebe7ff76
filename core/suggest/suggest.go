package suggest

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/crs-ci/crs-ci/core/policy"
)

// Options shape a suggestion.
type Options struct {
	Name   string // metadata.name; default "suggested"
	Mode   string // spec.mode; default enforce
	Strict bool   // nothing beyond what was seen: exact paths, addresses and ports, rules per program, every default deny
	Source string // where the events came from, for the header comment
}

// Rule is one suggested rule.
type Rule struct {
	Name      string
	Comment   []string
	Program   string // "" = any program
	Category  string // file, exec, network, syscall
	Access    string // file: read or write
	Direction string // network: outbound or inbound ("" = both)
	Paths     []item // file and exec patterns
	Unix      []item // network unix socket patterns
	Addresses []item // network CIDRs
	Ports     []string
	Syscalls  []item
	Events    int64
	keys      []key
	anyAddr   bool
}

// Suggestion is a suggested policy.
type Suggestion struct {
	YAML     []byte
	Rules    []*Rule
	Defaults map[string]string // category → allow | deny
	Notes    []string          // what the reviewer must know: lost events, probe errors, calls that cannot be allow-listed
	skipped  map[key]bool      // observations no policy path can express
}

var categories = []string{"file", "network", "exec", "syscall"}

// Suggest builds a policy from the observations.
func Suggest(o *Observed, opt Options) (*Suggestion, error) {
	if opt.Name == "" {
		opt.Name = "suggested"
	}
	if opt.Mode == "" {
		opt.Mode = policy.ModeEnforce
	}
	keys, skipped := o.usable(o.sortedKeys(nil), opt.Strict)
	names := map[string]bool{}
	s := &Suggestion{Defaults: map[string]string{}, skipped: map[key]bool{}}
	for k := range skipped {
		s.skipped[k] = true
	}
	s.Rules = buildRules(o, keys, opt.Strict, names)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.k.category()] = true
	}
	for _, c := range categories {
		if seen[c] || opt.Strict {
			s.Defaults[c] = "deny"
		} else {
			s.Defaults[c] = "allow"
		}
	}
	if len(o.Unnamed) > 0 {
		s.Defaults["syscall"] = "allow"
		var nrs []string
		for nr := range o.Unnamed {
			nrs = append(nrs, nr)
		}
		sort.Strings(nrs)
		s.Notes = append(s.Notes, fmt.Sprintf("syscall() numbers %s have no %s name: they cannot be allow-listed, so the syscall default stays allow",
			strings.Join(nrs, ", "), o.Arch))
	}
	if n := skippedNote(skipped); n != "" {
		s.Notes = append(s.Notes, n)
	}
	s.Notes = append(s.Notes, o.notes()...)
	s.YAML = s.render(o, opt)
	return s, nil
}

func (o *Observed) notes() []string {
	var out []string
	if o.Dropped > 0 {
		out = append(out, fmt.Sprintf("the probe lost %d events it could not write: behaviour may be missing from this policy, and enforcing it could deny what was not seen", o.Dropped))
	}
	if o.Errors > 0 {
		out = append(out, fmt.Sprintf("%d probe error events (for example a missing or corrupt policy): those processes ran unprobed and their behaviour is not in this policy", o.Errors))
	}
	if n := o.Input.Malformed + o.Input.Oversized; n > 0 {
		out = append(out, fmt.Sprintf("%d malformed or oversized lines were skipped (first: %s)", n, o.Input.FirstMalformed))
	}
	if o.Events == 0 {
		out = append(out, "no events were read: run the workload under a policy with logMode: all (audit mode) to record what it does")
	}
	return out
}

func (k kind) category() string {
	switch k {
	case kRead, kWrite:
		return "file"
	case kExec:
		return "exec"
	case kOut, kIn:
		return "network"
	}
	return "syscall"
}

// sortedKeys returns the observations (only those in only, when only is not nil) in a stable order.
func (o *Observed) sortedKeys(only map[key]bool) []key {
	out := make([]key, 0, len(o.m))
	for k := range o.m {
		if only == nil || only[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.k != b.k {
			return a.k < b.k
		}
		if a.subject != b.subject {
			return a.subject < b.subject
		}
		return a.program < b.program
	})
	return out
}

var badNameChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ruleName makes a valid, unique rule name from parts.
func ruleName(names map[string]bool, parts ...string) string {
	var ps []string
	for _, p := range parts {
		p = strings.Trim(badNameChars.ReplaceAllString(p, "-"), "-._")
		if p != "" {
			ps = append(ps, p)
		}
	}
	base := strings.Join(ps, "-")
	if len(base) > 100 {
		base = strings.Trim(base[:100], "-._")
	}
	if base == "" {
		base = "rule"
	}
	name := base
	for i := 2; names[name]; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	names[name] = true
	return name
}

// topDir is the first component of an absolute path ("etc" for /etc/nginx/x and for /etc), "root" for "/".
func topDir(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	if p == "" {
		return "root"
	}
	return p
}

func progBase(p string) string {
	if p == "" {
		return "any"
	}
	return path.Base(p)
}

// programsNote lists the programs behind a rule's events.
func programsNote(progs map[string]int64) string {
	type pc struct {
		p string
		n int64
	}
	var l []pc
	for p, n := range progs {
		l = append(l, pc{p, n})
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].n != l[j].n {
			return l[i].n > l[j].n
		}
		return l[i].p < l[j].p
	})
	var names []string
	for i, x := range l {
		if i == 3 {
			names = append(names, fmt.Sprintf("+%d more", len(l)-3))
			break
		}
		names = append(names, x.p)
	}
	return strings.Join(names, ", ")
}

var kindWord = map[kind]string{kRead: "read", kWrite: "write", kExec: "exec", kOut: "connect", kIn: "listen", kSys: "syscall"}

// buildRules makes the rules covering keys.
func buildRules(o *Observed, keys []key, strict bool, names map[string]bool) []*Rule {
	var rules []*Rule
	// Split by kind (and by program when strict).
	type bucket struct {
		k    kind
		prog string
	}
	buckets := map[bucket][]key{}
	var order []bucket
	for _, k := range keys {
		b := bucket{k.k, ""}
		if strict {
			b.prog = k.program
		}
		if _, ok := buckets[b]; !ok {
			order = append(order, b)
		}
		buckets[b] = append(buckets[b], k)
	}
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].prog != order[j].prog {
			return order[i].prog < order[j].prog
		}
		return order[i].k < order[j].k
	})
	for _, b := range order {
		ks := buckets[b]
		switch b.k {
		case kRead, kWrite, kExec:
			rules = append(rules, pathRules(o, b.k, b.prog, ks, strict, names)...)
		case kOut, kIn:
			rules = append(rules, netRules(o, b.k, b.prog, ks, strict, names)...)
		case kSys:
			rules = append(rules, sysRule(o, b.prog, ks, strict, names))
		}
	}
	return rules
}

func (o *Observed) count(k key) int64 { return o.m[k].count }

// deniedNote says which rules of the recording policy denied a rule's events (audit mode).
func (o *Observed) deniedNote(ks []key) string {
	by := map[string]int64{}
	for _, k := range ks {
		if d := o.m[k].deniedBy; d != "" {
			by[d] += o.m[k].count
		}
	}
	if len(by) == 0 {
		return ""
	}
	var parts []string
	for r, n := range by {
		parts = append(parts, fmt.Sprintf("%s (%d)", r, n))
	}
	sort.Strings(parts)
	return "REVIEW: the recording policy denied some of these events: " + strings.Join(parts, ", ")
}

func pathRules(o *Observed, k kind, prog string, ks []key, strict bool, names map[string]bool) []*Rule {
	pr := readProtection
	if k == kWrite {
		pr = writeProtection
	}
	// Group by top-level directory, so each rule stays readable.
	byTop := map[string][]key{}
	var tops []string
	all := map[string]int64{}
	for _, x := range ks {
		t := topDir(x.subject)
		if _, ok := byTop[t]; !ok {
			tops = append(tops, t)
		}
		byTop[t] = append(byTop[t], x)
		all[x.subject] += o.count(x)
	}
	sort.Strings(tops)
	cat, access := "file", kindWord[k]
	if k == kExec {
		cat, access = "exec", ""
	}
	word := kindWord[k]
	progName := []string{}
	if prog != "" {
		progName = []string{progBase(prog)}
	}
	if !strict {
		if pats := groupPaths(all, false, pr); len(pats) > MaxPatterns {
			r := &Rule{Name: ruleName(names, append(progName, word, "anywhere")...), Category: cat, Access: access,
				Program: escapeGlob(prog), keys: ks}
			progs := map[string]int64{}
			for _, x := range ks {
				r.Events += o.count(x)
				progs[x.program] += o.count(x)
			}
			r.Paths = []item{{"/**", r.Events}}
			r.Comment = []string{
				fmt.Sprintf("%d events on %d distinct paths: too broad to list (over %d patterns), so this rule allows %s anywhere", r.Events, len(all), MaxPatterns, word),
				"programs: " + programsNote(progs),
			}
			if n := o.deniedNote(ks); n != "" {
				r.Comment = append(r.Comment, n)
			}
			return []*Rule{r}
		}
	}
	var out []*Rule
	for _, t := range tops {
		group := byTop[t]
		paths := map[string]int64{}
		progs := map[string]int64{}
		r := &Rule{Category: cat, Access: access, Program: escapeGlob(prog), keys: group}
		for _, x := range group {
			paths[x.subject] += o.count(x)
			progs[x.program] += o.count(x)
			r.Events += o.count(x)
		}
		// Executables are listed one by one: a glob over a bin directory would allow every program in it.
		r.Paths = groupPaths(paths, strict || k == kExec, pr)
		r.Name = ruleName(names, append(progName, word, t)...)
		r.Comment = []string{fmt.Sprintf("%s on %s; programs: %s", plural(r.Events, "event"), plural(int64(len(paths)), "distinct path"), programsNote(progs))}
		if n := o.deniedNote(group); n != "" {
			r.Comment = append(r.Comment, n)
		}
		out = append(out, r)
	}
	return out
}

func netRules(o *Observed, k kind, prog string, ks []key, strict bool, names map[string]bool) []*Rule {
	dir := "outbound"
	if k == kIn {
		dir = "inbound"
	}
	word := kindWord[k]
	progName := []string{}
	if prog != "" {
		progName = []string{progBase(prog)}
	}
	ip := map[string]int64{}
	unix := map[string]int64{}
	var ipKeys, unixKeys []key
	abstract := map[string][]key{}
	var absProgs []string
	progsOf := func(list []key) map[string]int64 {
		m := map[string]int64{}
		for _, x := range list {
			m[x.program] += o.count(x)
		}
		return m
	}
	for _, x := range ks {
		if p, ok := strings.CutPrefix(x.subject, "unix:"); ok {
			if strings.HasPrefix(p, "/") {
				unix[p] += o.count(x)
				unixKeys = append(unixKeys, x)
			} else {
				if _, ok := abstract[x.program]; !ok {
					absProgs = append(absProgs, x.program)
				}
				abstract[x.program] = append(abstract[x.program], x)
			}
			continue
		}
		ip[x.subject] += o.count(x)
		ipKeys = append(ipKeys, x)
	}
	var out []*Rule
	groups := groupAddrs(ip, strict)
	if !strict && len(groups) > MaxNetGroups {
		r := &Rule{Name: ruleName(names, append(progName, word, "anywhere")...), Category: "network", Direction: dir,
			Program: escapeGlob(prog), keys: ks}
		for _, x := range ks {
			r.Events += o.count(x)
		}
		r.Comment = []string{
			fmt.Sprintf("%d events to %d address groups: too broad to list (over %d), so this rule allows any %s address", r.Events, len(groups), MaxNetGroups, dir),
			"programs: " + programsNote(progsOf(ks)),
		}
		if n := o.deniedNote(ks); n != "" {
			r.Comment = append(r.Comment, n)
		}
		return []*Rule{r}
	}
	// One rule per distinct port set, listing the address groups that used exactly those ports.
	type portSet struct {
		ports []string
		any   bool
	}
	psKey := func(g *netGroup) portSet {
		if !strict && len(g.ports) > MaxPorts {
			return portSet{any: true}
		}
		var ps []int
		for p := range g.ports {
			ps = append(ps, int(p))
		}
		sort.Ints(ps)
		var s []string
		for _, p := range ps {
			s = append(s, strconv.Itoa(p))
		}
		return portSet{ports: s}
	}
	bySet := map[string]*Rule{}
	var setOrder []string
	for _, g := range groups {
		ps := psKey(g)
		id := strings.Join(ps.ports, ",")
		r := bySet[id]
		if r == nil {
			r = &Rule{Category: "network", Direction: dir, Program: escapeGlob(prog), Ports: ps.ports}
			bySet[id] = r
			setOrder = append(setOrder, id)
		}
		r.Addresses = append(r.Addresses, item{prefixString(g.prefix), g.count})
		r.Events += g.count
		if !strict && g.prefix.Addr().IsUnspecified() {
			r.anyAddr = true
		}
	}
	for _, id := range setOrder {
		r := bySet[id]
		var covered []key
		for _, x := range ipKeys {
			ap, _ := parseAddrPort(x.subject)
			for _, a := range r.Addresses {
				if prefixContains(a.v, ap) && portListed(r.Ports, ap) {
					covered = append(covered, x)
					break
				}
			}
		}
		if r.anyAddr {
			// a bind to 0.0.0.0 or :: (every interface): the rule takes any address
			r.Addresses = nil
			covered = covered[:0]
			for _, x := range ipKeys {
				ap, _ := parseAddrPort(x.subject)
				if portListed(r.Ports, ap) {
					covered = append(covered, x)
				}
			}
		}
		r.keys = covered
		portName := "any-port"
		if len(r.Ports) > 0 {
			portName = strings.Join(r.Ports[:min(3, len(r.Ports))], "-")
			if len(r.Ports) > 3 {
				portName += "-and-more"
			}
		}
		r.Name = ruleName(names, append(progName, word, portName)...)
		if r.anyAddr {
			r.Comment = []string{fmt.Sprintf("%s on any address (a bind to every interface was seen); programs: %s", plural(r.Events, "event"), programsNote(progsOf(covered)))}
		} else {
			r.Comment = []string{fmt.Sprintf("%s to %s; programs: %s", plural(r.Events, "event"), plural(int64(len(r.Addresses)), "address group"), programsNote(progsOf(covered)))}
		}
		if n := o.deniedNote(covered); n != "" {
			r.Comment = append(r.Comment, n)
		}
		out = append(out, r)
	}
	if len(unix) > 0 {
		r := &Rule{Name: ruleName(names, append(progName, word, "unix")...), Category: "network", Direction: dir,
			Program: escapeGlob(prog), keys: unixKeys}
		r.Unix = groupPaths(unix, strict, writeProtection)
		for _, n := range unix {
			r.Events += n
		}
		r.Comment = []string{fmt.Sprintf("%s on %s; programs: %s", plural(r.Events, "event"), plural(int64(len(unix)), "unix socket"), programsNote(progsOf(unixKeys)))}
		if n := o.deniedNote(unixKeys); n != "" {
			r.Comment = append(r.Comment, n)
		}
		out = append(out, r)
	}
	sort.Strings(absProgs)
	for _, p := range absProgs {
		list := abstract[p]
		r := &Rule{Name: ruleName(names, progBase(p), word, "abstract-unix"), Category: "network", Direction: dir,
			Program: escapeGlob(p), keys: list}
		var socks []string
		for _, x := range list {
			r.Events += o.count(x)
			socks = append(socks, strings.TrimPrefix(x.subject, "unix:"))
		}
		if len(socks) > 3 {
			socks = append(socks[:3], "…")
		}
		r.Comment = []string{
			fmt.Sprintf("%d events on abstract unix sockets (%s): no path pattern can match them, so this rule", r.Events, strings.Join(socks, ", ")),
			fmt.Sprintf("allows every %s address for this program only", dir),
		}
		if n := o.deniedNote(list); n != "" {
			r.Comment = append(r.Comment, n)
		}
		out = append(out, r)
	}
	return out
}

func sysRule(o *Observed, prog string, ks []key, strict bool, names map[string]bool) *Rule {
	progName := []string{}
	if prog != "" {
		progName = []string{progBase(prog)}
	}
	r := &Rule{Name: ruleName(names, append(progName, "syscalls", "observed")...), Category: "syscall",
		Program: escapeGlob(prog), keys: ks}
	byName := map[string]int64{}
	progs := map[string]int64{}
	for _, x := range ks {
		byName[x.subject] += o.count(x)
		progs[x.program] += o.count(x)
		r.Events += o.count(x)
	}
	for n, c := range byName {
		r.Syscalls = append(r.Syscalls, item{n, c})
	}
	sort.Slice(r.Syscalls, func(i, j int) bool { return r.Syscalls[i].v < r.Syscalls[j].v })
	r.Comment = []string{fmt.Sprintf("%s; programs: %s", plural(r.Events, "syscall() event"), programsNote(progs))}
	if n := o.deniedNote(ks); n != "" {
		r.Comment = append(r.Comment, n)
	}
	return r
}

// render writes the suggested policy as YAML.
func (s *Suggestion) render(o *Observed, opt Options) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Suggested by `crs-ci policy suggest%s` from %s", strictWord(opt.Strict), plural(o.Events, "event"))
	if opt.Source != "" {
		fmt.Fprintf(&b, " (%s)", opt.Source)
	}
	b.WriteString(".\n# It allows what was observed and nothing was judged: review every rule before enforcing it.\n")
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "# NOTE: %s\n", oneLine(n))
	}
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\nspec:\n", policy.APIVersion, policy.Kind, yamlScalar(opt.Name))
	fmt.Fprintf(&b, "  mode: %s\n  logMode: [deny, alert]\n  defaults:\n", opt.Mode)
	for _, c := range categories {
		why := "behaviour observed: allow-listed by the rules below"
		if s.Defaults[c] == "allow" {
			why = "no events observed: nothing to learn from"
			if c == "syscall" && len(o.Unnamed) > 0 {
				why = "some syscall() numbers could not be named (see the notes above)"
			}
		} else if opt.Strict {
			why = "strict: nothing beyond what was seen"
			for _, r := range s.Rules {
				if r.Category == c {
					why = "strict: only what was seen, by the program that did it"
					break
				}
			}
		}
		fmt.Fprintf(&b, "    %-8s %-5s  # %s\n", c+":", s.Defaults[c], why)
	}
	if len(s.Rules) == 0 {
		b.WriteString("  rules: []\n")
		return []byte(b.String())
	}
	b.WriteString("  rules:\n")
	writeRules(&b, s.Rules, "    ")
	return []byte(b.String())
}

func strictWord(strict bool) string {
	if strict {
		return " --strict"
	}
	return ""
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// writeRules writes rules as a block sequence, each line starting with indent.
func writeRules(b *strings.Builder, rules []*Rule, indent string) {
	for i, r := range rules {
		if i > 0 {
			b.WriteString("\n")
		}
		for _, c := range r.Comment {
			fmt.Fprintf(b, "%s# %s\n", indent, oneLine(c))
		}
		fmt.Fprintf(b, "%s- name: %s\n", indent, yamlScalar(r.Name))
		in := indent + "  "
		fmt.Fprintf(b, "%saction: allow\n", in)
		if r.Program != "" {
			fmt.Fprintf(b, "%sprogram: %s\n", in, yamlScalar(r.Program))
		}
		switch r.Category {
		case "file", "exec":
			fmt.Fprintf(b, "%s%s:\n", in, r.Category)
			if r.Category == "file" {
				fmt.Fprintf(b, "%s  access: [%s]\n", in, r.Access)
			}
			fmt.Fprintf(b, "%s  paths:\n", in)
			writeItems(b, r.Paths, in+"    ", "event")
		case "network":
			fmt.Fprintf(b, "%snetwork:\n", in)
			if r.Direction != "" {
				fmt.Fprintf(b, "%s  direction: %s\n", in, r.Direction)
			}
			if len(r.Unix) > 0 {
				fmt.Fprintf(b, "%s  unix:\n", in)
				writeItems(b, r.Unix, in+"    ", "event")
			}
			if len(r.Addresses) > 0 {
				fmt.Fprintf(b, "%s  addresses:\n", in)
				writeItems(b, r.Addresses, in+"    ", "event")
			}
			if len(r.Ports) > 0 {
				fmt.Fprintf(b, "%s  ports: [%s]\n", in, strings.Join(r.Ports, ", "))
			}
		case "syscall":
			fmt.Fprintf(b, "%ssyscall:\n%s  names:\n", in, in)
			writeItems(b, r.Syscalls, in+"    ", "call")
		}
	}
}

func writeItems(b *strings.Builder, items []item, indent, unit string) {
	w := 0
	for _, it := range items {
		w = max(w, len(yamlScalar(it.v)))
	}
	for _, it := range items {
		fmt.Fprintf(b, "%s- %-*s  # %s\n", indent, w, yamlScalar(it.v), plural(it.count, unit))
	}
}

var plainRE = regexp.MustCompile(`^[A-Za-z0-9_/.][A-Za-z0-9_/.*+=,~%-]*$`)

// yamlScalar writes s as a plain YAML scalar when that is safe, else double-quoted.
func yamlScalar(s string) string {
	if plainRE.MatchString(s) && !isYAMLKeyword(s) {
		return s
	}
	return strconv.Quote(s)
}

func isYAMLKeyword(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~":
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// parseAddrPort reads a canonical address subject.
func parseAddrPort(s string) (addrPort, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return addrPort{}, false
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return addrPort{}, false
	}
	return addrPort{host: strings.Trim(s[:i], "[]"), port: port}, true
}

type addrPort struct {
	host string
	port int
}

func prefixContains(cidr string, ap addrPort) bool {
	pf, err := parsePrefix(cidr)
	if err != nil {
		return false
	}
	a, err := parseAddr(ap.host)
	if err != nil {
		return false
	}
	return pf.Contains(a)
}

func portListed(ports []string, ap addrPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p == strconv.Itoa(ap.port) {
			return true
		}
	}
	return false
}

// Stats returns the number of events each default and rule covers, for messages.
func (s *Suggestion) Stats() (rules int, events int64) {
	for _, r := range s.Rules {
		events += r.Events
	}
	return len(s.Rules), events
}

// plural writes "1 event", "2 events".
func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
