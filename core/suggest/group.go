package suggest

import (
	"net/netip"
	"path"
	"sort"
	"strings"

	"github.com/crs-ci/crs-ci/core/probe"
)

// Thresholds of the non-strict grouping.
const (
	// FilesForStar is how many files seen directly in one directory make it `DIR/*`.
	FilesForStar = 3
	// PathsForDoubleStar is how many paths seen below a directory, in at least two of its
	// subdirectories, make it `DIR/**` (never above the second level: /usr/lib/** but not /usr/**).
	PathsForDoubleStar = 6
	// MaxPatterns is the most path patterns a category may need before it counts as too broad to
	// allow-list (then reads, writes or execs anywhere are allowed by one rule, and said so).
	MaxPatterns = 48
	// MaxNetGroups is the most address groups one direction may need before it counts as too broad.
	MaxNetGroups = 32
	// MaxPorts is the most distinct ports one address group may list before any port is allowed.
	MaxPorts = 8
)

// protection lists paths and directories a glob is never widened over unless that very path was
// observed, so a suggestion cannot quietly allow reading secrets or rewriting the probe.
type protection struct {
	files []string
	dirs  []string // with a trailing slash
}

var (
	secretFiles = []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/master.passwd"}
	secretDirs  = []string{"/root/", "/home/", "/run/secrets/", "/var/run/secrets/", "/etc/ssl/private/", "/etc/sudoers.d/"}

	// readProtection guards secrets; writeProtection also the probe's own files and the kernel's.
	readProtection  = protection{files: secretFiles, dirs: secretDirs}
	writeProtection = protection{
		files: append(append([]string{}, secretFiles...), probe.PreloadPath, probe.PolicyPath, probe.LibraryPath),
		dirs:  append(append([]string{}, secretDirs...), "/etc/crs-ci/", "/usr/lib/crs-ci/", "/proc/", "/sys/"),
	}
)

// item is one value of a rule (a path pattern, a CIDR, a port, a syscall) with the events it covers.
type item struct {
	v     string
	count int64
}

// escapeGlob escapes the glob metacharacters of a literal path.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type node struct {
	children map[string]*node
	leaf     bool
	count    int64 // events on this exact path
}

// safe reports whether a pattern DIR/* (star) or DIR/** (double star) stays clear of protected paths
// that were not observed.
func (pr protection) safe(dir string, double bool, seen map[string]int64) bool {
	for _, p := range pr.files {
		if _, ok := seen[p]; ok {
			continue
		}
		if double && strings.HasPrefix(p, dir+"/") || !double && path.Dir(p) == dir {
			return false
		}
	}
	for _, d := range pr.dirs {
		if strings.HasPrefix(d, dir+"/") || strings.HasPrefix(dir+"/", d) {
			return false
		}
	}
	return true
}

// groupPaths covers paths (path → events) with patterns: exact paths when strict, else directory globs
// where a directory held enough of them. Non-absolute paths are kept exact. The result is sorted.
func groupPaths(paths map[string]int64, strict bool, pr protection) []item {
	var out []item
	root := &node{children: map[string]*node{}}
	for p, n := range paths {
		if strict || !strings.HasPrefix(p, "/") || p == "/" {
			out = append(out, item{escapeGlob(p), n})
			continue
		}
		cur := root
		for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			nx := cur.children[c]
			if nx == nil {
				nx = &node{children: map[string]*node{}}
				cur.children[c] = nx
			}
			cur = nx
		}
		cur.leaf = true
		cur.count += n
	}
	if !strict {
		out = append(out, pr.collapse(root, "", 0, paths)...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].v < out[j].v })
	return out
}

// collapse returns the patterns covering the paths below n (the directory dir, at depth components).
func (pr protection) collapse(n *node, dir string, depth int, seen map[string]int64) []item {
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	var files, below []item
	subdirs := 0
	var distinct int
	var total int64
	for _, name := range names {
		c := n.children[name]
		p := dir + "/" + name
		if c.leaf {
			files = append(files, item{escapeGlob(p), c.count})
			distinct++
			total += c.count
		}
		if len(c.children) > 0 {
			sub := pr.collapse(c, p, depth+1, seen)
			subdirs++
			below = append(below, sub...)
			d, t := countBelow(c)
			distinct += d
			total += t
		}
	}
	if depth >= 2 && subdirs >= 2 && distinct >= PathsForDoubleStar && pr.safe(dir, true, seen) {
		return []item{{escapeGlob(dir) + "/**", total}}
	}
	if depth >= 1 && len(files) >= FilesForStar && pr.safe(dir, false, seen) {
		var t int64
		for _, f := range files {
			t += f.count
		}
		files = []item{{escapeGlob(dir) + "/*", t}}
	}
	return append(files, below...)
}

func countBelow(n *node) (distinct int, events int64) {
	for _, c := range n.children {
		if c.leaf {
			distinct++
			events += c.count
		}
		d, e := countBelow(c)
		distinct += d
		events += e
	}
	return
}

// netGroup is a set of addresses (one CIDR) with the ports seen on them.
type netGroup struct {
	prefix netip.Prefix
	ports  map[uint16]int64
	count  int64
}

// groupAddrs groups IP address:port subjects into CIDRs: an IPv4 /24 (IPv6 /64) where two or more
// addresses of it were seen, else the single address; strict keeps single addresses.
func groupAddrs(subjects map[string]int64, strict bool) []*netGroup {
	type ap struct {
		a netip.AddrPort
		n int64
	}
	var aps []ap
	wide := map[netip.Prefix]map[netip.Addr]bool{}
	for s, n := range subjects {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			continue
		}
		aps = append(aps, ap{a, n})
		w := widePrefix(a.Addr())
		if wide[w] == nil {
			wide[w] = map[netip.Addr]bool{}
		}
		wide[w][a.Addr()] = true
	}
	groups := map[netip.Prefix]*netGroup{}
	for _, x := range aps {
		pf := netip.PrefixFrom(x.a.Addr(), x.a.Addr().BitLen())
		if w := widePrefix(x.a.Addr()); !strict && len(wide[w]) >= 2 && !x.a.Addr().IsUnspecified() {
			pf = w
		}
		g := groups[pf]
		if g == nil {
			g = &netGroup{prefix: pf, ports: map[uint16]int64{}}
			groups[pf] = g
		}
		g.ports[x.a.Port()] += x.n
		g.count += x.n
	}
	out := make([]*netGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return comparePrefix(out[i].prefix, out[j].prefix) < 0 })
	return out
}

func widePrefix(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// prefixString prints a single-address prefix as the address.
func prefixString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// parsePrefix reads a CIDR or a single address (as its full-length prefix).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
