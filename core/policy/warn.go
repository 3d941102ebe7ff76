package policy

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/crs-ci/crs-ci/core/report"
)

// warnings adds the findings that do not make a policy invalid (unless --strict): shadowed rules,
// deny rules under a deny default, an allow-everything enforce policy, and rules the probe cannot
// enforce for reasons known offline.
func (ps *parser) warnings(p *Policy) {
	for j, rj := range p.Rules {
		for i := 0; i < j; i++ {
			ri := p.Rules[i]
			if ri.Category == rj.Category && covers(ri, rj) {
				ps.warnAt(rj.Line, rj.Col, "shadowed-rule",
					fmt.Sprintf("move rule %q above rule %q, narrow rule %q, or delete it", rj.Name, ri.Name, ri.Name),
					"rule %q is never used: the earlier rule %q (line %d) matches every call it matches", rj.Name, ri.Name, ri.Line)
				break
			}
		}
		if rj.Action == Deny && p.Defaults[rj.Category] == Deny {
			later := false
			for _, rk := range p.Rules[j+1:] {
				if rk.Category == rj.Category && rk.Action != Deny {
					later = true
				}
			}
			if !later {
				ps.warnAt(rj.Line, rj.Col, "redundant-deny",
					fmt.Sprintf("delete the rule, or change defaults.%s to allow if you meant a deny list", rj.Category),
					"rule %q denies what the %s default already denies", rj.Name, rj.Category)
			}
		}
		if rj.Category == Syscall {
			for _, name := range rj.Syscalls {
				e, _ := lookupSyscall(name)
				for _, a := range []struct {
					arch string
					nr   int
				}{{"x86_64", e.X86_64}, {"aarch64", e.Aarch64}} {
					if a.nr < 0 {
						ps.warnAt(rj.Line, rj.Col, "syscall-not-on-arch",
							"also name its replacement (for example openat for open) so the rule works on both architectures",
							"rule %q: system call %q does not exist on %s: it never matches in %s images", rj.Name, name, a.arch, a.arch)
					}
				}
			}
			ps.add(report.Info, rj.Line, rj.Col, "syscall-via-wrapper-only",
				"combine syscall rules with the container's seccomp profile for calls made through their own libc wrappers",
				"rule %q: the probe sees system calls made through libc's syscall() function; calls through their own libc wrapper (ptrace(), mount(), ...) or raw instructions are not seen", rj.Name)
		}
	}
	if p.Mode == ModeEnforce {
		anyDeny := false
		for c := File; c <= Syscall; c++ {
			if p.Defaults[c] == Deny {
				anyDeny = true
			}
		}
		for _, r := range p.Rules {
			if r.Action == Deny {
				anyDeny = true
			}
		}
		if !anyDeny {
			ps.warnAt(1, 1, "allows-everything", "add deny rules, or set mode: audit while you learn what the workload does",
				"policy %q is in enforce mode but denies nothing", p.name)
		}
	}
}

// covers reports whether every call rule b matches is also matched by rule a (same category).
func covers(a, b *Rule) bool {
	if a.Program != "" && a.Program != b.Program && (b.Program == "" || !isLiteral(b.Program) || !matchGlob(a.Program, b.Program)) {
		return false
	}
	switch a.Category {
	case File:
		return a.Access&b.Access == b.Access && pathsCovered(a.Paths, b.Paths)
	case Exec:
		return pathsCovered(a.Paths, b.Paths)
	case Syscall:
		for _, n := range b.Syscalls {
			found := false
			for _, m := range a.Syscalls {
				found = found || m == n
			}
			if !found {
				return false
			}
		}
		return true
	case Network:
		if a.Access&b.Access != b.Access || (a.Protocol != ProtoAny && a.Protocol != b.Protocol) {
			return false
		}
		if len(a.Paths) == 0 && len(a.Prefixes) == 0 && len(a.Ports) == 0 {
			return true
		}
		if len(b.Paths) == 0 && len(b.Prefixes) == 0 && len(b.Ports) == 0 {
			return false
		}
		if len(b.Paths) > 0 {
			return len(a.Paths) > 0 && pathsCovered(a.Paths, b.Paths)
		}
		if len(a.Paths) > 0 {
			return false
		}
		if len(a.Prefixes) > 0 && (len(b.Prefixes) == 0 || !rangesCovered(mergeCIDRs(a.Prefixes), mergeCIDRs(b.Prefixes))) {
			return false
		}
		if len(a.Ports) > 0 && (len(b.Ports) == 0 || !portsCovered(mergePorts(a.Ports), mergePorts(b.Ports))) {
			return false
		}
		return true
	}
	return false
}

func pathsCovered(a, b []string) bool {
	for _, pb := range b {
		found := false
		for _, pa := range a {
			if pathCovered(pa, pb) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// pathCovered reports whether glob a matches every path glob b matches (decided for the clear cases).
func pathCovered(a, b string) bool {
	if a == b || (isLiteral(b) && matchGlob(a, b)) {
		return true
	}
	if a == "/**" {
		return !matchGlob(b, "/") // "/**" matches everything but the root itself
	}
	if strings.HasSuffix(a, "/**") {
		dir := strings.TrimSuffix(a, "**")
		return isLiteral(dir) && strings.HasPrefix(b, dir) && len(b) > len(dir)
	}
	return false
}

func rangesCovered(a, b [][2][16]byte) bool {
	for _, rb := range b {
		found := false
		for _, ra := range a {
			if bytes.Compare(ra[0][:], rb[0][:]) <= 0 && bytes.Compare(rb[1][:], ra[1][:]) <= 0 {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func portsCovered(a, b [][2]uint16) bool {
	for _, rb := range b {
		found := false
		for _, ra := range a {
			if ra[0] <= rb[0] && rb[1] <= ra[1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
